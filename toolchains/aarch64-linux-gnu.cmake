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
# Debian's arm64 cpuinfo / pthreadpool packages cannot be installed beside the host's (same paths).
# cpuinfo stays off: dispatch.cc reads the hwcaps (getauxval). pthreadpool: .ci/aarch64 unpacks
# Debian's libpthreadpool0:arm64 and libpthreadpool-dev:arm64 (apt-get download + dpkg-deb -x) into a
# folder passed as EMBER_AARCH64_DEPS, and the runtime then runs multi-threaded (the test binaries
# find the shared library through their RPATH, under qemu too); without it, single-threaded.
set(EMBER_USE_CPUINFO OFF CACHE BOOL "" FORCE)
set(EMBER_AARCH64_DEPS "" CACHE PATH "unpacked arm64 libpthreadpool0 + -dev (empty: no thread pool)")
if(EMBER_AARCH64_DEPS AND EXISTS "${EMBER_AARCH64_DEPS}/usr/lib/aarch64-linux-gnu/libpthreadpool.so")
  set(EMBER_USE_PTHREADPOOL ON CACHE BOOL "" FORCE)
  set(PTHREADPOOL_LIBRARY "${EMBER_AARCH64_DEPS}/usr/lib/aarch64-linux-gnu/libpthreadpool.so"
      CACHE FILEPATH "" FORCE)
  set(PTHREADPOOL_INCLUDE_DIR "${EMBER_AARCH64_DEPS}/usr/include" CACHE PATH "" FORCE)
else()
  set(EMBER_USE_PTHREADPOOL OFF CACHE BOOL "" FORCE)
endif()
set(EMBER_BUILD_CONVERTER OFF CACHE BOOL "" FORCE)
