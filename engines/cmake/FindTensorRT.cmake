# Finds TensorRT's runtime: the headers (NvInfer.h, NvInferRuntime.h, NvInferVersion.h) and libnvinfer.
#
# Hints, in order: TENSORRT_ROOT as a CMake variable or an environment variable, or TensorRT_ROOT
# (CMake's <Package>_ROOT): the prefix of a TensorRT tar/zip package (include/ and lib/); then the
# standard prefixes, where NVIDIA's Debian/Ubuntu packages (libnvinfer-dev, also in NVIDIA's containers)
# put the headers in include/<multiarch>/ and the library in lib/<multiarch>/, and /usr/local/tensorrt,
# /opt/tensorrt. The pip wheels (tensorrt-cu12-libs, tensorrt-cu13-libs: the tensorrt_libs package) carry
# libnvinfer.so.<major> but no headers; when no library was found elsewhere, the one in the tensorrt_libs
# package of TensorRT_PYTHON (default: Python3_EXECUTABLE, else python3 on the PATH) is taken, and the
# headers must still come from a TensorRT package of the same version (TENSORRT_ROOT).
#
# Defines:
#   TensorRT_FOUND
#   TensorRT_INCLUDE_DIR, TensorRT_LIBRARY (cached)
#   TensorRT_INCLUDE_DIRS, TensorRT_LIBRARIES
#   TensorRT_VERSION        the headers' version, major.minor.patch.build (NvInferVersion.h);
#                           find_package(TensorRT 10) refuses older ones
#   TensorRT_VERSION_MAJOR, TensorRT_VERSION_MINOR, TensorRT_VERSION_PATCH, TensorRT_VERSION_BUILD
#   TensorRT::nvinfer       imported target: the library, its include directory, and CUDA::cudart when the CUDA
#                           toolkit is found (TensorRT's headers include cuda_runtime_api.h)

set(_trt_hints ${TENSORRT_ROOT} $ENV{TENSORRT_ROOT} ${TensorRT_ROOT})
set(_trt_prefixes /usr/local/tensorrt /opt/tensorrt /usr/local/TensorRT)

find_path(TensorRT_INCLUDE_DIR
  NAMES NvInfer.h
  HINTS ${_trt_hints}
  PATHS ${_trt_prefixes}
  PATH_SUFFIXES include include/${CMAKE_LIBRARY_ARCHITECTURE})

# nvinfer: Linux and the tar packages; nvinfer_<major>: Windows packages name the library by its major version.
find_library(TensorRT_LIBRARY
  NAMES nvinfer nvinfer_11 nvinfer_10
  HINTS ${_trt_hints}
  PATHS ${_trt_prefixes}
  PATH_SUFFIXES lib lib64 lib/${CMAKE_LIBRARY_ARCHITECTURE} lib/x64)

if(NOT TensorRT_LIBRARY)
  # The pip wheel's layout: site-packages/tensorrt_libs/libnvinfer.so.<major>, with no libnvinfer.so link.
  if(NOT TensorRT_PYTHON)
    if(Python3_EXECUTABLE)
      set(TensorRT_PYTHON "${Python3_EXECUTABLE}")
    else()
      find_program(TensorRT_PYTHON NAMES python3 python)
    endif()
  endif()
  if(TensorRT_PYTHON)
    execute_process(
      COMMAND "${TensorRT_PYTHON}" -c "import os, tensorrt_libs; print(os.path.dirname(tensorrt_libs.__file__))"
      OUTPUT_VARIABLE _trt_wheel_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _trt_wheel_status)
    if(_trt_wheel_status EQUAL 0 AND IS_DIRECTORY "${_trt_wheel_dir}")
      find_library(TensorRT_LIBRARY
        NAMES libnvinfer.so.11 libnvinfer.so.10 nvinfer nvinfer_11 nvinfer_10
        PATHS "${_trt_wheel_dir}" NO_DEFAULT_PATH)
      if(TensorRT_LIBRARY AND NOT TensorRT_FIND_QUIETLY)
        message(STATUS "TensorRT: taking the pip wheel's ${TensorRT_LIBRARY}: it must be the version of the headers")
      endif()
    endif()
    unset(_trt_wheel_dir)
    unset(_trt_wheel_status)
  endif()
endif()

# NvInferVersion.h: TensorRT up to 10.10 defines NV_TENSORRT_MAJOR ... as numbers; later ones (10.11 on, 11)
# define TRT_MAJOR_ENTERPRISE ... as numbers and NV_TENSORRT_MAJOR ... as aliases of them.
if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
  file(STRINGS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _trt_version_lines
       REGEX "^#define[ \t]+(NV_TENSORRT|TRT)_(MAJOR|MINOR|PATCH|BUILD)(_ENTERPRISE)?[ \t]+[0-9]+")
  foreach(_trt_part MAJOR MINOR PATCH BUILD)
    set(TensorRT_VERSION_${_trt_part} "")
    foreach(_trt_macro "NV_TENSORRT_${_trt_part}" "TRT_${_trt_part}_ENTERPRISE")
      foreach(_trt_line IN LISTS _trt_version_lines)
        if(_trt_line MATCHES "^#define[ \t]+${_trt_macro}[ \t]+([0-9]+)")
          set(TensorRT_VERSION_${_trt_part} "${CMAKE_MATCH_1}")
        endif()
      endforeach()
    endforeach()
  endforeach()
  if(NOT TensorRT_VERSION_MAJOR STREQUAL "" AND NOT TensorRT_VERSION_MINOR STREQUAL ""
     AND NOT TensorRT_VERSION_PATCH STREQUAL "")
    set(TensorRT_VERSION "${TensorRT_VERSION_MAJOR}.${TensorRT_VERSION_MINOR}.${TensorRT_VERSION_PATCH}")
    if(NOT TensorRT_VERSION_BUILD STREQUAL "")
      string(APPEND TensorRT_VERSION ".${TensorRT_VERSION_BUILD}")
    endif()
  endif()
  unset(_trt_version_lines)
  unset(_trt_part)
  unset(_trt_macro)
  unset(_trt_line)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TensorRT
  REQUIRED_VARS TensorRT_LIBRARY TensorRT_INCLUDE_DIR TensorRT_VERSION
  VERSION_VAR TensorRT_VERSION
  REASON_FAILURE_MESSAGE
    "set TENSORRT_ROOT to a TensorRT prefix (include/NvInfer.h, lib/libnvinfer.so), or install NVIDIA's libnvinfer-dev")
mark_as_advanced(TensorRT_INCLUDE_DIR TensorRT_LIBRARY TensorRT_PYTHON)

if(TensorRT_FOUND)
  set(TensorRT_INCLUDE_DIRS "${TensorRT_INCLUDE_DIR}")
  set(TensorRT_LIBRARIES "${TensorRT_LIBRARY}")
  if(NOT TARGET TensorRT::nvinfer)
    add_library(TensorRT::nvinfer UNKNOWN IMPORTED)
    set_target_properties(TensorRT::nvinfer PROPERTIES
      IMPORTED_LOCATION "${TensorRT_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR}")
    if(NOT TARGET CUDA::cudart)
      find_package(CUDAToolkit QUIET)
    endif()
    if(TARGET CUDA::cudart)
      set_property(TARGET TensorRT::nvinfer APPEND PROPERTY INTERFACE_LINK_LIBRARIES CUDA::cudart)
    endif()
  endif()
endif()
unset(_trt_hints)
unset(_trt_prefixes)
