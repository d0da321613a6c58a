# The installed package: include/ember/{ember.h,platform.h}, lib/libember.a (runtime and kernels),
# lib/libember_platform_<posix|baremetal>.a, a CMake package (find_package(Ember): Ember::ember,
# Ember::platform_<name>) and a pkg-config file (ember.pc), for the host and each cross target.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(ember_platform_headers PROPERTIES EXPORT_NAME platform_headers)
install(TARGETS ember ember_platform ember_platform_headers EXPORT EmberTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES runtime/include/ember/ember.h runtime/include/ember/platform.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ember)
set(EMBER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Ember)
install(EXPORT EmberTargets NAMESPACE Ember:: DESTINATION ${EMBER_CMAKE_DIR})
configure_package_config_file(cmake/EmberConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/EmberConfig.cmake INSTALL_DESTINATION ${EMBER_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/EmberConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/EmberConfig.cmake
        ${CMAKE_CURRENT_BINARY_DIR}/EmberConfigVersion.cmake DESTINATION ${EMBER_CMAKE_DIR})

# pkg-config: the runtime is C++ inside, so a C program's link needs libstdc++ and libm, plus the
# optional libraries this build uses.
set(EMBER_PC_LIBS "-lember -lember_platform_${EMBER_PLATFORM_NAME}")
foreach(lib IN ITEMS PTHREADPOOL XNNPACK CPUINFO)
  if(${lib}_LIBRARY)
    string(APPEND EMBER_PC_LIBS " ${${lib}_LIBRARY}")
  endif()
endforeach()
string(APPEND EMBER_PC_LIBS " -lstdc++ -lm")
configure_file(cmake/ember.pc.in ${CMAKE_CURRENT_BINARY_DIR}/ember.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ember.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
