include(CMakePackageConfigHelpers)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/parkpool" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
if(EXISTS "${PROJECT_SOURCE_DIR}/pool/include/parkpool")
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/pool/include/parkpool" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
endif()

install(TARGETS parkpool_sync parkpool_pool parkpool ${PARKPOOL_EXTRA_INSTALL_TARGETS}
        EXPORT parkpoolTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

set(PARKPOOL_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/parkpool")
install(EXPORT parkpoolTargets NAMESPACE parkpool:: DESTINATION "${PARKPOOL_CMAKE_DIR}")
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/parkpoolConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/parkpoolConfig.cmake" INSTALL_DESTINATION "${PARKPOOL_CMAKE_DIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/parkpoolConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}" COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/parkpoolConfig.cmake"
              "${PROJECT_BINARY_DIR}/parkpoolConfigVersion.cmake"
        DESTINATION "${PARKPOOL_CMAKE_DIR}")
