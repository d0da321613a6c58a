# Bare-metal 32-bit ARM (Cortex-A15 class, NEON VFPv4, hard float) with Debian's gcc-arm-none-eabi and
# newlib. Builds libember.a with every optional dependency off (no OS, no threads, no cpuinfo); the
# product links it with its own startup code, or runs it under
#   qemu-system-arm -M vexpress-a15 -cpu cortex-a15 -semihosting-config enable=on,target=native -kernel app.elf
#   cmake -S . -B build-baremetal -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-none-eabi.cmake
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(EMBER_ARM_FLAGS "-mcpu=cortex-a15 -mfpu=neon-vfpv4 -mfloat-abi=hard")
set(CMAKE_C_FLAGS_INIT "${EMBER_ARM_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${EMBER_ARM_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "--specs=aprofile-ve.specs")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(EMBER_BAREMETAL ON CACHE BOOL "" FORCE)
