# Finds ONNX Runtime's C/C++ headers and shared library.
#
# Hints: ONNXRUNTIME_ROOT, as a CMake variable or an environment variable (the prefix of a release
# tarball, of a source build's install, or of engines/cmake/install_onnxruntime.sh); then the standard
# prefixes. Headers are looked for in include/ (release tarballs) and include/onnxruntime/ (source
# installs, Debian's libonnxruntime-dev).
#
# Defines:
#   OnnxRuntime_FOUND
#   OnnxRuntime_INCLUDE_DIR, OnnxRuntime_LIBRARY (cached)
#   OnnxRuntime_API_VERSION   the headers' ORT_API_VERSION (the library must serve at least this one)
#   onnxruntime::onnxruntime  imported target: the library and its include directory

find_path(OnnxRuntime_INCLUDE_DIR
  NAMES onnxruntime_cxx_api.h
  HINTS ${ONNXRUNTIME_ROOT} ENV ONNXRUNTIME_ROOT
  PATH_SUFFIXES include include/onnxruntime include/onnxruntime/core/session)
find_library(OnnxRuntime_LIBRARY
  NAMES onnxruntime
  HINTS ${ONNXRUNTIME_ROOT} ENV ONNXRUNTIME_ROOT
  PATH_SUFFIXES lib lib64)

# The C++ header includes the C one from its own directory.
if(OnnxRuntime_INCLUDE_DIR AND EXISTS "${OnnxRuntime_INCLUDE_DIR}/onnxruntime_c_api.h")
  file(STRINGS "${OnnxRuntime_INCLUDE_DIR}/onnxruntime_c_api.h" _ort_api_line
       REGEX "^#define ORT_API_VERSION [0-9]+$")
  string(REGEX REPLACE "^#define ORT_API_VERSION " "" OnnxRuntime_API_VERSION "${_ort_api_line}")
  unset(_ort_api_line)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OnnxRuntime
  REQUIRED_VARS OnnxRuntime_LIBRARY OnnxRuntime_INCLUDE_DIR OnnxRuntime_API_VERSION
  REASON_FAILURE_MESSAGE "set ONNXRUNTIME_ROOT to an ONNX Runtime prefix (include/ and lib/), e.g. one made by engines/cmake/install_onnxruntime.sh")
mark_as_advanced(OnnxRuntime_INCLUDE_DIR OnnxRuntime_LIBRARY)

if(OnnxRuntime_FOUND AND NOT TARGET onnxruntime::onnxruntime)
  add_library(onnxruntime::onnxruntime UNKNOWN IMPORTED)
  set_target_properties(onnxruntime::onnxruntime PROPERTIES
    IMPORTED_LOCATION "${OnnxRuntime_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${OnnxRuntime_INCLUDE_DIR}")
endif()
