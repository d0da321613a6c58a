# Cross build for 32-bit ARM Linux (ARMv7-A with NEON, hard float: Cortex-A7/A9/A15 boards) with
# Debian's g++-arm-linux-gnueabihf; ctest runs the test binaries under qemu-arm -cpu EMBER_QEMU_CPU.
# Everything builds for ARMv7-A with NEON + VFPv4 (GCC vectorizes no float code for AArch32 NEON on
# its own: not IEEE); the dispatch still checks the hwcaps (HWCAP_NEON) before picking the variant.
#   cmake -S . -B build-armv7 -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(EMBER_ARM_FLAGS "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard")
set(CMAKE_C_FLAGS_INIT "${EMBER_ARM_FLAGS}")
# -Wno-psabi: GCC's notes on a std::map iterator's argument passing changed in GCC 7.1 (tests only).
set(CMAKE_CXX_FLAGS_INIT "${EMBER_ARM_FLAGS} -Wno-psabi")
set(EMBER_ARMHF_SYSROOT /usr/arm-linux-gnueabihf CACHE PATH "target libraries for qemu -L")
set(EMBER_QEMU_CPU cortex-a15 CACHE STRING "qemu-arm -cpu value for running tests")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L ${EMBER_ARMHF_SYSROOT} -cpu ${EMBER_QEMU_CPU})
# Target libraries from the cross sysroot (and CMAKE_PREFIX_PATH, e.g. a cross-built GoogleTest);
# host programs (flatc) and header-only host packages (FlatBuffers, nlohmann-json) are still found.
list(APPEND CMAKE_FIND_ROOT_PATH ${EMBER_ARMHF_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# No armhf cpuinfo / pthreadpool beside the host's: hwcaps pick the kernels, one thread runs them.
set(EMBER_USE_CPUINFO OFF CACHE BOOL "" FORCE)
set(EMBER_USE_PTHREADPOOL OFF CACHE BOOL "" FORCE)
set(EMBER_BUILD_CONVERTER OFF CACHE BOOL "" FORCE)
