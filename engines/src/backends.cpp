// The backend table: which backends this build has (KASF_WITH_* from CMake, as each SDK was
// found) and which one a file's suffix names.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "backend.hpp"

namespace kasf {

namespace {

using Open = std::unique_ptr<Backend> (*)(const std::string&, const BackendOptions&);

#ifdef KASF_WITH_AOTI
constexpr Open kOpenAoti = open_aoti;
#else
constexpr Open kOpenAoti = nullptr;
#endif
#ifdef KASF_WITH_ONNXRUNTIME
constexpr Open kOpenOnnxRuntime = open_onnxruntime;
#else
constexpr Open kOpenOnnxRuntime = nullptr;
#endif
#ifdef KASF_WITH_TENSORRT
constexpr Open kOpenTensorRT = open_tensorrt;
#else
constexpr Open kOpenTensorRT = nullptr;
#endif

struct Entry {
  const char* name;
  std::vector<std::string> suffixes;
  Open open;  // nullptr: not in this build
};

const std::vector<Entry>& table() {
  static const std::vector<Entry> entries = {
      {"aoti", {".pt2"}, kOpenAoti},
      {"onnxruntime", {".onnx"}, kOpenOnnxRuntime},
      {"tensorrt", {".engine", ".plan"}, kOpenTensorRT},
  };
  return entries;
}

std::unique_ptr<Backend> open_entry(const Entry& entry, const std::string& path, const BackendOptions& options) {
  if (entry.open == nullptr) {
    std::string built;
    for (const std::string& name : available_backends()) built += (built.empty() ? "" : ", ") + name;
    throw Error(Status::Unsupported, "cannot open " + path + ": this build of the kasf runtime has no " + entry.name +
                                         " backend (it has: " + (built.empty() ? "none" : built) +
                                         "); configure it where that SDK is installed (CMake says which it found)");
  }
  return entry.open(path, options);
}

}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const Entry& entry : table()) {
    if (entry.open != nullptr) names.emplace_back(entry.name);
  }
  return names;
}

std::unique_ptr<Backend> open_backend(const std::string& path, const std::string& name, const BackendOptions& options) {
  if (!name.empty()) {
    for (const Entry& entry : table()) {
      if (name == entry.name) return open_entry(entry, path, options);
    }
    throw Error(Status::InvalidArgument, "unknown backend '" + name + "': choose aoti, onnxruntime or tensorrt");
  }
  std::string suffix = std::filesystem::path(path).extension().string();
  std::transform(suffix.begin(), suffix.end(), suffix.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const Entry& entry : table()) {
    if (std::find(entry.suffixes.begin(), entry.suffixes.end(), suffix) != entry.suffixes.end()) {
      return open_entry(entry, path, options);
    }
  }
  throw Error(Status::EngineFile, "cannot tell the backend of " + path + " from its suffix '" + suffix +
                                      "': the kasf runtime knows .pt2 (aoti), .onnx (onnxruntime), .engine and "
                                      ".plan (tensorrt); name one with the backend option");
}

}  // namespace kasf
