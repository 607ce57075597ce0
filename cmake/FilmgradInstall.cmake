# `cmake --install BUILD --prefix P` puts here:
#   P/include/filmgrad/filmgrad.h            the C API
#   P/include/filmgrad/<folder>/*.h          the C++ headers (tensor/, kernels/, autograd/, nn/, models/, data/, and
#                                            the restoring half of apps/), included as "apps/restore.h" etc.
#   P/lib/libfilmgrad.a, libfilmgrad.so*     the libraries
#   P/bin/filmgrad                           the program (not in FG_MINIMAL builds)
#   P/lib/cmake/filmgrad/                    the CMake package: find_package(filmgrad) gives filmgrad::filmgrad
#                                            (shared) and filmgrad::filmgrad_static, their dependencies found
#                                            the same way (filmgradConfig.cmake)
#   P/lib/pkgconfig/filmgrad.pc              pkg-config: `pkg-config --cflags --libs filmgrad` (shared), with
#                                            --static for the static library's dependencies
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FG_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/filmgrad)
# Where the build found OpenBLAS and cuDNN: the first place filmgradConfig.cmake looks for them again.
get_filename_component(OPENBLAS_LIBRARY_DIR "${OPENBLAS_LIBRARY}" DIRECTORY)
if(FG_CUDNN)
  get_filename_component(CUDNN_LIBRARY_DIR "${CUDNN_LIBRARY}" DIRECTORY)
endif()

install(FILES include/filmgrad/filmgrad.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/filmgrad)
foreach(folder tensor kernels autograd nn models data)
  install(DIRECTORY ${folder}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/filmgrad/${folder}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
endforeach()
install(FILES apps/args.h apps/json.h apps/task.h apps/restore.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/filmgrad/apps)

# The installed shared library finds its own folder's libraries (none today) without LD_LIBRARY_PATH.
set_target_properties(filmgrad_shared PROPERTIES INSTALL_RPATH "$ORIGIN")
install(TARGETS filmgrad filmgrad_shared EXPORT filmgradTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET filmgrad_app)
  install(TARGETS filmgrad_app RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(EXPORT filmgradTargets NAMESPACE filmgrad:: DESTINATION ${FG_INSTALL_CMAKEDIR})
configure_package_config_file(cmake/filmgradConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/filmgradConfig.cmake
                              INSTALL_DESTINATION ${FG_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/filmgradConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/filmgradConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/filmgradConfigVersion.cmake
        DESTINATION ${FG_INSTALL_CMAKEDIR})

# pkg-config: the static library's dependencies as Libs.private (OpenBLAS by its full path: it has no .pc file on
# every system).
set(FG_PC_LIBS_PRIVATE "${OPENBLAS_LIBRARY} ${OpenMP_CXX_FLAGS}")
foreach(lib ${TIFF_LIBRARIES} ${ZLIB_LIBRARIES})
  string(APPEND FG_PC_LIBS_PRIVATE " ${lib}")
endforeach()
set(FG_PC_CFLAGS "")
if(FG_CUDA)
  string(APPEND FG_PC_CFLAGS " -DFG_WITH_CUDA=1")
  string(APPEND FG_PC_LIBS_PRIVATE " -L${CUDAToolkit_LIBRARY_DIR} -lcublas -lcudart")
  if(FG_CUDNN)
    string(APPEND FG_PC_CFLAGS " -DFG_WITH_CUDNN=1")
    string(APPEND FG_PC_LIBS_PRIVATE " ${CUDNN_LIBRARY}")
  endif()
endif()
string(APPEND FG_PC_LIBS_PRIVATE " -lstdc++ -lm -lpthread")
configure_file(cmake/filmgrad.pc.in ${CMAKE_CURRENT_BINARY_DIR}/filmgrad.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/filmgrad.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
