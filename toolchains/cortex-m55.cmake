# Bare-metal Cortex-M55 (Armv8.1-M, Helium MVE, FPU, hard float) with Debian's gcc-arm-none-eabi and
# newlib-nano, sized for a microcontroller (with CMAKE_BUILD_TYPE=MinSizeRel: -Os): one section per
# function and object, dropped when unused (--gc-sections). The demo image (platforms/baremetal/an547) runs under
#   qemu-system-arm -M mps3-an547 -nographic -semihosting-config enable=on,target=native -kernel IMAGE
#   cmake -S . -B build-m55 -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/cortex-m55.cmake \
#         -DCMAKE_BUILD_TYPE=MinSizeRel
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(EMBER_ARM_FLAGS "-mcpu=cortex-m55 -mfloat-abi=hard -mthumb -ffunction-sections -fdata-sections")
set(CMAKE_C_FLAGS_INIT "${EMBER_ARM_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${EMBER_ARM_FLAGS} -fno-threadsafe-statics")
set(CMAKE_ASM_FLAGS_INIT "${EMBER_ARM_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "--specs=nano.specs --specs=nosys.specs -Wl,--gc-sections")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(EMBER_BAREMETAL ON CACHE BOOL "" FORCE)
set(EMBER_ARM_NEON OFF CACHE BOOL "" FORCE)  # Cortex-M has no NEON
set(EMBER_ARM_MVE ON CACHE BOOL "")  # Helium (-DEMBER_ARM_MVE=OFF: scalar only): the mve u8 matmul, scalar kernels otherwise
