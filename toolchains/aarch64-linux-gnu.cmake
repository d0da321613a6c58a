# Cross build for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu; ctest runs the test binaries
# under qemu-user. EMBER_QEMU_CPU picks the emulated CPU: cortex-a53 (NEON only) or max (dot
# product, i8mm), so every ARM kernel variant executes in one of the two runs.
#   cmake -S . -B build-aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake \
#         -DEMBER_QEMU_CPU=cortex-a53
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(EMBER_AARCH64_SYSROOT /usr/aarch64-linux-gnu CACHE PATH "target libraries for qemu -L")
set(EMBER_QEMU_CPU max CACHE STRING "qemu-aarch64 -cpu value for running tests (cortex-a53, max, ...)")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${EMBER_AARCH64_SYSROOT} -cpu ${EMBER_QEMU_CPU})
# Target libraries from the cross sysroot (and CMAKE_PREFIX_PATH, e.g. a cross-built GoogleTest);
# host programs (flatc) and header-only host packages (FlatBuffers, CLI11) are still found.
list(APPEND CMAKE_FIND_ROOT_PATH ${EMBER_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# The arm64 builds of cpuinfo / pthreadpool are not installed side by side with the host's:
# the ARM build reads hwcaps (getauxval) in dispatch.cc and runs single-threaded kernels.
set(EMBER_USE_CPUINFO OFF CACHE BOOL "" FORCE)
set(EMBER_USE_PTHREADPOOL OFF CACHE BOOL "" FORCE)
set(EMBER_BUILD_CONVERTER OFF CACHE BOOL "" FORCE)
