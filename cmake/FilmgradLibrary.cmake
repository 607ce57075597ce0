# The engine library, built once as position-independent objects (fg_objects) and linked from them twice: the
# static libfilmgrad.a (target filmgrad, what the program, the tests and the benchmarks link) and the shared
# libfilmgrad.so (target filmgrad_shared), so no source is compiled twice. -fno-semantic-interposition lets calls
# inside the library stay direct, as in a non-PIC build (what -fPIC would otherwise cost).
#
# Sources are picked up by folder. FG_MINIMAL=ON leaves out the sources that restoring never reaches (below;
# docs/embedding.md has the sizes).

file(GLOB_RECURSE FG_SOURCES CONFIGURE_DEPENDS
  tensor/*.cpp kernels/*.cpp autograd/*.cpp nn/*.cpp models/*.cpp data/*.cpp)
if(FG_CUDA)
  file(GLOB_RECURSE FG_CUDA_SOURCES CONFIGURE_DEPENDS tensor/*.cu kernels/*.cu)
  list(APPEND FG_SOURCES ${FG_CUDA_SOURCES})
endif()
# The inference half of apps/: the restoration model (task.h), tiled restoring (restore.h), what they use, and the
# C API on top of them. The rest of apps/ (the subcommands) is fg_apps.
set(FG_LIBRARY_APP_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/apps/args.cpp ${CMAKE_CURRENT_SOURCE_DIR}/apps/json.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/apps/task.cpp ${CMAKE_CURRENT_SOURCE_DIR}/apps/restore.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/apps/c_api.cpp)
list(APPEND FG_SOURCES ${FG_LIBRARY_APP_SOURCES})
if(FG_MINIMAL)
  # What neither restoring nor loading a model reaches (found from the link map of a static examples/embed_c and
  # the undefined symbols of the objects that stay): gradient clipping, loss scaling, mixed precision, LR schedules,
  # the optimizers, the losses, the datasets, augmentation and damage synthesis, the threaded loader, gradient
  # checks, the evaluation's metrics and baselines, and the training-only networks (the perceptual loss's VGG, the
  # NoGAN critic). What still names them in the sources that stay is behind #ifdef FG_MINIMAL, with an error that
  # says this build cannot train (apps/task.cpp, nn/checkpoint.cpp's optimizer state, models/registry.cpp).
  list(FILTER FG_SOURCES EXCLUDE REGEX
       "/(nn/(clip|loss_scale|losses|mixed_precision|optim|schedule)|autograd/gradcheck|models/(critic|perceptual_loss|vgg)|data/(augment|damage_dust|damage_negative|dataset|loader|median|metrics))\\.cpp$")
endif()

add_library(fg_objects OBJECT ${FG_SOURCES})
set_target_properties(fg_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(fg_objects PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-semantic-interposition>)
endif()
# The optimizers' Adam loop calls sqrt; without errno to set it vectorises (results are unchanged: IEEE sqrt is
# correctly rounded either way).
set_source_files_properties(nn/optim.cpp PROPERTIES COMPILE_OPTIONS -fno-math-errno)
target_include_directories(fg_objects PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_include_directories(fg_objects SYSTEM PRIVATE ${OPENBLAS_INCLUDE_DIR})
# Compile flags only (-fopenmp, include folders, definitions): the objects are linked by the two libraries below.
target_link_libraries(fg_objects PRIVATE OpenMP::OpenMP_CXX TIFF::TIFF ZLIB::ZLIB)
target_compile_definitions(fg_objects PRIVATE FG_VERSION_STRING="${PROJECT_VERSION}"
                           $<$<BOOL:${FG_MINIMAL}>:FG_MINIMAL=1>)
fg_target_defaults(fg_objects)

# OpenBLAS has no CMake package: one imported target, recreated the same way by the installed filmgradConfig.cmake.
add_library(filmgrad::openblas UNKNOWN IMPORTED)
set_target_properties(filmgrad::openblas PROPERTIES IMPORTED_LOCATION ${OPENBLAS_LIBRARY})

if(FG_CUDA)
  target_compile_definitions(fg_objects PRIVATE FG_WITH_CUDA=1)
  set_target_properties(fg_objects PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
  target_compile_options(fg_objects PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-Wall>)
  target_link_libraries(fg_objects PRIVATE CUDA::cudart CUDA::cublas)
  if(FG_CUDNN)
    target_compile_definitions(fg_objects PRIVATE FG_WITH_CUDNN=1)
    target_include_directories(fg_objects SYSTEM PRIVATE ${CUDNN_INCLUDE_DIR})
    add_library(filmgrad::cudnn UNKNOWN IMPORTED)
    set_target_properties(filmgrad::cudnn PROPERTIES IMPORTED_LOCATION ${CUDNN_LIBRARY})
  endif()
endif()

# What both libraries give the code that links them. `deps` is PUBLIC for the static library (its users link
# OpenMP, OpenBLAS, libtiff, zlib and CUDA themselves) and PRIVATE for the shared one (it records them itself).
function(fg_library_interface target deps)
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}> $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:include> $<INSTALL_INTERFACE:include/filmgrad>)
  target_link_libraries(${target} ${deps} OpenMP::OpenMP_CXX filmgrad::openblas TIFF::TIFF ZLIB::ZLIB)
  if(FG_CUDA)
    target_compile_definitions(${target} PUBLIC FG_WITH_CUDA=1)
    target_link_libraries(${target} ${deps} CUDA::cudart CUDA::cublas)
    if(FG_CUDNN)
      target_compile_definitions(${target} PUBLIC FG_WITH_CUDNN=1)
      target_link_libraries(${target} ${deps} filmgrad::cudnn)
    endif()
  endif()
  fg_target_defaults(${target})
endfunction()

add_library(filmgrad STATIC $<TARGET_OBJECTS:fg_objects>)
fg_library_interface(filmgrad PUBLIC)
add_library(filmgrad_shared SHARED $<TARGET_OBJECTS:fg_objects>)
set_target_properties(filmgrad_shared PROPERTIES OUTPUT_NAME filmgrad VERSION ${PROJECT_VERSION}
                      SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR} EXPORT_NAME filmgrad)
fg_library_interface(filmgrad_shared PRIVATE)
# Every symbol the shared library uses is defined in it or in a library it records (so an FG_MINIMAL build that
# leaves out a source something still needs fails here, not in the embedding program).
if(NOT FG_SANITIZE AND NOT FG_FUZZ)
  target_link_options(filmgrad_shared PRIVATE -Wl,--no-undefined)
endif()
set_target_properties(filmgrad PROPERTIES EXPORT_NAME filmgrad_static)
