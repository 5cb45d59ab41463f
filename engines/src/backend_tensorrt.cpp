// TensorRT backend (TensorRT 10.x and 11): runs a plan written by `kasf build`, after the checks the
// Python engine makes (kasf/engines/tensorrt.py): the JSON sidecar `<engine>.json` must be kasf's,
// written for this TensorRT version and this GPU's compute capability, and describe this very plan
// (SHA-256); the plan must have exactly the sidecar's input and output, both float32. The plan runs
// with enqueueV3 on the backend's own CUDA stream, through pinned host staging buffers and device
// buffers that grow with the batch (up to the profile's maximum).
#include <NvInferRuntime.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <type_traits>
#include <utility>

#include "backend.hpp"

static_assert(NV_TENSORRT_MAJOR >= 10, "kasf's TensorRT backend is written for TensorRT 10 and later");

// getInferLibMajorVersion() ... getInferLibBuildVersion() are declared in NvInferRuntime.h of TensorRT 10.1
// and 11; for TensorRT 10.0 headers this falls back on getInferLibVersion(), which every version has.
#if NV_TENSORRT_MAJOR > 10 || (NV_TENSORRT_MAJOR == 10 && NV_TENSORRT_MINOR >= 1)
#define KASF_TRT_VERSION_PARTS 1
#else
#define KASF_TRT_VERSION_PARTS 0
#endif

namespace kasf {
namespace {

using json = nlohmann::json;

constexpr const char* kSidecarFormat = "kasf-tensorrt-engine";
constexpr int kSidecarVersion = 1;  // the newest sidecar format this runtime reads

// ---------------------------------------------------------------------------------------------
// Small helpers

std::string repr(const std::string& text) { return "'" + text + "'"; }  // as Python's !r shows a name

std::string file_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// A JSON value as the Python side would print it inside a message: strings bare, the rest as JSON.
std::string text_of(const json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

std::string dims_text(const nvinfer1::Dims& dims) {
  if (dims.nbDims < 0) return "(no shape)";
  std::string text = "[";
  for (int32_t i = 0; i < dims.nbDims; ++i) text += (i ? ", " : "") + std::to_string(dims.d[i]);
  return text + "]";
}

std::string data_type_name(nvinfer1::DataType type) {
  // By value, so that enumerators added in later TensorRT versions need no newer header here.
  switch (static_cast<int32_t>(type)) {
    case 0: return "DataType.FLOAT";
    case 1: return "DataType.HALF";
    case 2: return "DataType.INT8";
    case 3: return "DataType.INT32";
    case 4: return "DataType.BOOL";
    case 5: return "DataType.UINT8";
    case 6: return "DataType.FP8";
    case 7: return "DataType.BF16";
    case 8: return "DataType.INT64";
    case 9: return "DataType.INT4";
    default: return "DataType(" + std::to_string(static_cast<int32_t>(type)) + ")";
  }
}

// ---------------------------------------------------------------------------------------------
// CUDA: checked calls, RAII, the current device

[[noreturn]] void throw_cuda(cudaError_t status, const std::string& what) {
  (void)cudaGetLastError();  // clear a non-sticky error so that it does not surface in a later call
  throw Error(Status::Backend, "CUDA failed in " + what + ": " + cudaGetErrorString(status) + " (" +
                                   cudaGetErrorName(status) + ")");
}

void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw_cuda(status, what);
}

struct DeviceFree {
  void operator()(void* pointer) const noexcept { cudaFree(pointer); }
};
struct HostFree {
  void operator()(void* pointer) const noexcept { cudaFreeHost(pointer); }
};
struct StreamDestroy {
  void operator()(cudaStream_t stream) const noexcept { cudaStreamDestroy(stream); }
};
using DevicePtr = std::unique_ptr<void, DeviceFree>;
using HostPtr = std::unique_ptr<void, HostFree>;
using StreamPtr = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;

// Makes `device` current for a scope and restores the caller's device after it: the backend must
// not change which device the calling thread works on.
class DeviceGuard {
 public:
  // strict: throw when the device cannot be made current; otherwise carry on (destructors).
  DeviceGuard(int device, bool strict) {
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current == device) return;
    cudaError_t status = cudaSetDevice(device);
    if (status != cudaSuccess) {
      if (strict) throw_cuda(status, "cudaSetDevice(" + std::to_string(device) + ")");
      (void)cudaGetLastError();
      return;
    }
    previous_ = current;
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;  // the device to restore; -1: nothing to restore
};

// ---------------------------------------------------------------------------------------------
// TensorRT's logger: keeps the last warnings and errors, to put into the messages of exceptions
// (the Python side lets TensorRT print them, and says "its log above says why").

class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, nvinfer1::AsciiChar const* message) noexcept override {
    if (severity > Severity::kWARNING || message == nullptr) return;
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      entries_.push_back({severity != Severity::kWARNING, message});
      if (entries_.size() > kKept) entries_.pop_front();
    } catch (...) {
      // log() must not throw: a message lost to a failed allocation is the lesser harm
    }
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.clear();
  }

  // `message`, followed by what TensorRT logged since the last clear(): its errors, or its
  // warnings when it logged no error. Clears the log.
  std::string explain(const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex_);
    bool any_error = std::any_of(entries_.begin(), entries_.end(), [](const Entry& e) { return e.error; });
    std::string said;
    for (const Entry& entry : entries_) {
      if (entry.error != any_error) continue;
      said += (said.empty() ? "" : "; ") + entry.text;
    }
    entries_.clear();
    if (said.empty()) return message + " (TensorRT logged no reason)";
    return message + ": TensorRT " + (any_error ? "logged: " : "warned: ") + said;
  }

 private:
  struct Entry {
    bool error;
    std::string text;
  };
  static constexpr size_t kKept = 8;
  std::mutex mutex_;
  std::deque<Entry> entries_;
};

// ---------------------------------------------------------------------------------------------
// The TensorRT version, as the sidecar records it
//
// The Python side writes trt.__version__ into the sidecar and refuses a plan when that string differs
// from the running trt.__version__. The wheels' __version__ is "major.minor.patch.build" (10.13.0.35,
// 11.4.0.106; the first 10.0 wheels had "major.minor.patch", 10.0.1). Here the loaded libnvinfer says
// its version in numbers: getInferLibMajorVersion() ... getInferLibBuildVersion() (TensorRT 10.1 on),
// or, built against TensorRT 10.0 headers, getInferLibVersion() = (major * 100 + minor) * 100 + patch
// (NV_TENSORRT_VERSION's encoding from TensorRT 10 on; TensorRT 8's was major * 1000 + ..., but a
// TensorRT 8 library cannot be loaded by code built against TensorRT 10 headers: the soname differs),
// which has no build number. So the check compares major.minor.patch always, and the build number too
// when the sidecar records one and the library says it: the verdict of Python's string comparison for
// every version string TensorRT publishes.

struct TensorRTVersion {
  int major = 0, minor = 0, patch = 0;
  int build = -1;  // -1: not known (built against TensorRT 10.0, which has no getInferLibBuildVersion)

  std::string text() const {
    std::string text = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
    return build >= 0 ? text + "." + std::to_string(build) : text;
  }
};

TensorRTVersion running_tensorrt_version() {
  TensorRTVersion version;
#if KASF_TRT_VERSION_PARTS
  version.major = getInferLibMajorVersion();
  version.minor = getInferLibMinorVersion();
  version.patch = getInferLibPatchVersion();
  version.build = getInferLibBuildVersion();
#else
  const int32_t encoded = getInferLibVersion();  // (major * 100 + minor) * 100 + patch
  version.major = encoded / 10000;
  version.minor = encoded / 100 % 100;
  version.patch = encoded % 100;
#endif
  return version;
}

// The leading all-digit components of a dotted version ("10.13.0.35" -> 10 13 0 35; "10.0.1.post1" ->
// 10 0 1); an empty list when it does not start with a number.
std::vector<long> version_components(const std::string& text) {
  std::vector<long> components;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, '.')) {
    if (part.empty() || part.size() > 9 || !std::all_of(part.begin(), part.end(), [](unsigned char c) {
          return c >= '0' && c <= '9';
        })) {
      break;
    }
    components.push_back(std::stol(part));
  }
  return components;
}

bool same_tensorrt_version(const std::string& built, const TensorRTVersion& running) {
  std::vector<long> parts = version_components(built);
  if (parts.size() < 3) return false;
  if (parts[0] != running.major || parts[1] != running.minor || parts[2] != running.patch) return false;
  return parts.size() < 4 || running.build < 0 || parts[3] == running.build;
}

// ---------------------------------------------------------------------------------------------
// The sidecar, the plan, and their checks (kasf/engines/tensorrt.py: read_sidecar,
// check_engine_compatibility, the SHA-256 comparison in TensorRTEngine.__init__)

json read_sidecar(const std::string& engine_path) {
  const std::string path = engine_path + ".json";
  std::error_code ignored;
  if (!std::filesystem::is_regular_file(path, ignored)) {
    throw Error(Status::EngineFile, engine_path + " has no sidecar " + file_name(path) +
                                        ": kasf runs only plans it built, with what they were built for next "
                                        "to them; build it with `kasf build`");
  }
  std::ifstream stream(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
  if (!stream.good() && !stream.eof()) {
    throw Error(Status::EngineFile, "cannot read the sidecar " + path + ": rebuild the engine with `kasf build`");
  }
  json sidecar;
  try {
    sidecar = json::parse(text);
  } catch (const json::exception& error) {
    throw Error(Status::EngineFile, "sidecar " + path + " is not valid JSON (" + error.what() +
                                        "): rebuild the engine with `kasf build`");
  }
  if (!sidecar.is_object() || !sidecar.contains("format") || sidecar["format"] != kSidecarFormat) {
    throw Error(Status::EngineFile,
                path + " is not a kasf TensorRT sidecar (no format '" + kSidecarFormat + "')");
  }
  if (sidecar.contains("format_version")) {
    const json& version = sidecar["format_version"];
    if (!version.is_number()) {
      throw Error(Status::EngineFile, "sidecar " + path + " has format version " + version.dump() +
                                          ", not a number: rebuild the engine with `kasf build`");
    }
    if (version.get<double>() > kSidecarVersion) {
      throw Error(Status::EngineFile, "sidecar " + path + " is format version " + version.dump() +
                                          "; this kasf runtime reads up to " + std::to_string(kSidecarVersion) +
                                          ": upgrade kasf");
    }
  }
  return sidecar;
}

// Refuses a plan built for another TensorRT version or compute capability, saying which. Returns
// a note on what TensorRT accepts but a user should know (another GPU model of the same compute
// capability: its tactics were timed on the other model).
std::string check_engine_compatibility(const json& sidecar, const TensorRTVersion& tensorrt,
                                                    const std::string& gpu_name, const std::string& capability) {
  std::vector<std::string> problems;
  for (const char* key : {"tensorrt_version", "compute_capability", "gpu_name"}) {
    if (!sidecar.contains(key)) {
      std::string words = key;
      std::replace(words.begin(), words.end(), '_', ' ');
      problems.push_back("the sidecar does not say its " + words);
    }
  }
  const std::string built_gpu = sidecar.contains("gpu_name") ? text_of(sidecar["gpu_name"]) : "None";
  if (sidecar.contains("tensorrt_version") && !sidecar["tensorrt_version"].is_null()) {
    const json& built = sidecar["tensorrt_version"];
    if (!built.is_string() || !same_tensorrt_version(built.get<std::string>(), tensorrt)) {
      problems.push_back("it was built with TensorRT " + text_of(built) + ", this is TensorRT " + tensorrt.text());
    }
  }
  if (sidecar.contains("compute_capability") && !sidecar["compute_capability"].is_null()) {
    const json& built = sidecar["compute_capability"];
    if (!built.is_string() || built.get<std::string>() != capability) {
      problems.push_back("it was built for compute capability " + text_of(built) + " (" + built_gpu +
                         "), this GPU (" + gpu_name + ") is compute capability " + capability);
    }
  }
  if (!problems.empty()) {
    std::string onnx = "model.onnx";
    if (sidecar.contains("onnx") && sidecar["onnx"].is_object() && sidecar["onnx"].contains("path")) {
      onnx = text_of(sidecar["onnx"]["path"]);
    }
    std::string joined;
    for (const std::string& problem : problems) joined += (joined.empty() ? "" : "; ") + problem;
    throw Error(Status::EngineFile, "this TensorRT engine cannot run here: " + joined +
                                        ". A plan runs only on the TensorRT version and GPU compute capability it "
                                        "was built for: rebuild it here (`kasf build " + onnx + " -o ...`)");
  }
  if (built_gpu != gpu_name) {
    return "built on a " + built_gpu + ", running on a " + gpu_name + " (both compute capability " + capability +
           "): TensorRT accepts it, but its kernels were timed on the other GPU; rebuild here for best speed";
  }
  return "";
}

std::vector<char> read_plan(const std::string& path) {
  std::ifstream stream(path, std::ios::binary | std::ios::ate);
  if (!stream) throw Error(Status::EngineFile, "cannot open TensorRT engine " + path);
  const std::streamoff size = stream.tellg();
  if (size <= 0) {
    throw Error(Status::EngineFile, "TensorRT engine " + path + " is empty: rebuild it with `kasf build`");
  }
  std::vector<char> plan(static_cast<size_t>(size));
  stream.seekg(0);
  if (!stream.read(plan.data(), size)) throw Error(Status::EngineFile, "cannot read TensorRT engine " + path);
  return plan;
}

std::string sha256_hex(const std::vector<char>& data) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(context.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(context.get(), digest, &length) != 1) {
    throw Error(Status::Backend, "OpenSSL could not compute a SHA-256");
  }
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

// A string field the sidecar must have.
std::string sidecar_string(const json& sidecar, const char* key, const std::string& path) {
  if (!sidecar.contains(key) || !sidecar[key].is_string()) {
    throw Error(Status::EngineFile, "sidecar " + path + ".json does not name its " + key +
                                        " tensor: rebuild the engine with `kasf build`");
  }
  return sidecar[key].get<std::string>();
}

int sidecar_n_frames(const json& sidecar, const std::string& path) {
  if (sidecar.contains("model_config") && sidecar["model_config"].is_object() &&
      sidecar["model_config"].contains("n_frames")) {
    const json& n_frames = sidecar["model_config"]["n_frames"];
    if (n_frames.is_number_integer() && n_frames.get<int64_t>() > 0 && n_frames.get<int64_t>() < (1 << 20)) {
      return static_cast<int>(n_frames.get<int64_t>());
    }
  }
  throw Error(Status::EngineFile, "sidecar " + path + ".json has no model_config.n_frames (a positive integer): "
                                  "rebuild the engine with `kasf build`");
}

// ---------------------------------------------------------------------------------------------

class TensorRTBackend final : public Backend {
 public:
  TensorRTBackend(const std::string& path, const BackendOptions& options) : path_(path), device_(options.device) {
    try {
      open(options);
    } catch (...) {
      release();  // the GPU objects go with their device current, as in the destructor
      throw;
    }
  }

  ~TensorRTBackend() override { release(); }

  std::string name() const override { return "tensorrt"; }
  int n_frames() const override { return n_frames_; }
  int max_batch() const override { return static_cast<int>(max_batch_); }

  std::string notes() const override { return notes_; }

  void infer(const float* keypoints, int64_t batch, float* poses) override {
    if (keypoints == nullptr || poses == nullptr) {
      throw Error(Status::InvalidArgument, "the TensorRT backend got a null keypoints or poses buffer");
    }
    if (batch < min_batch_ || batch > max_batch_) {
      throw Error(Status::BadInput, "batch " + std::to_string(batch) + " is outside this engine's profile (" +
                                        std::to_string(min_batch_) + " to " + std::to_string(max_batch_) +
                                        "): split the batch, or rebuild with `kasf build --min-batch/--max-batch`");
    }
    std::lock_guard<std::mutex> lock(mutex_);  // one run at a time: one context, one set of buffers
    DeviceGuard guard(device_, true);
    const size_t bytes = static_cast<size_t>(batch) * sample_bytes();
    reserve(bytes);
    std::memcpy(host_input_.get(), keypoints, bytes);
    cuda_check(
        cudaMemcpyAsync(device_input_.get(), host_input_.get(), bytes, cudaMemcpyHostToDevice, stream_.get()),
        "cudaMemcpyAsync (keypoints to the GPU)");
    bind(batch);
    logger_.clear();
    if (!context_->enqueueV3(stream_.get())) {
      (void)cudaStreamSynchronize(stream_.get());  // nothing left running on the buffers
      throw Error(Status::Backend, logger_.explain("TensorRT failed to run " + path_));
    }
    cuda_check(
        cudaMemcpyAsync(host_output_.get(), device_output_.get(), bytes, cudaMemcpyDeviceToHost, stream_.get()),
        "cudaMemcpyAsync (poses from the GPU)");
    cuda_check(cudaStreamSynchronize(stream_.get()), "cudaStreamSynchronize (running the TensorRT engine)");
    std::memcpy(poses, host_output_.get(), bytes);
  }

 private:
  size_t sample_bytes() const { return static_cast<size_t>(n_frames_) * kNumJoints * kChannels * sizeof(float); }

  void open(const BackendOptions& options) {
    std::error_code ignored;
    if (!std::filesystem::is_regular_file(path_, ignored)) {
      throw Error(Status::EngineFile, "TensorRT engine " + path_ + " does not exist");
    }
    const json sidecar = read_sidecar(path_);

    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      throw Error(Status::Backend,
                  std::string("running a TensorRT engine needs an NVIDIA GPU, and CUDA sees none (") +
                      (status != cudaSuccess ? cudaGetErrorString(status) : "no device") + ")");
    }
    if (options.device < 0 || options.device >= count) {
      throw Error(Status::InvalidArgument, "CUDA device " + std::to_string(options.device) +
                                               " does not exist: this machine has " + std::to_string(count) +
                                               " (0 to " + std::to_string(count - 1) + ")");
    }
    cudaDeviceProp properties{};
    cuda_check(cudaGetDeviceProperties(&properties, device_), "cudaGetDeviceProperties");
    const std::string gpu_name = properties.name;
    const std::string capability = std::to_string(properties.major) + "." + std::to_string(properties.minor);
    const TensorRTVersion tensorrt = running_tensorrt_version();
    notes_ = check_engine_compatibility(sidecar, tensorrt, gpu_name, capability);

    const std::vector<char> plan = read_plan(path_);
    if (!sidecar.contains("engine_sha256") || sidecar["engine_sha256"] != sha256_hex(plan)) {
      throw Error(Status::EngineFile, path_ + " is not the plan its sidecar " + file_name(path_ + ".json") +
                                          " describes (SHA-256 differs): rebuild it with `kasf build`");
    }
    n_frames_ = sidecar_n_frames(sidecar, path_);
    input_name_ = sidecar_string(sidecar, "input", path_);
    output_name_ = sidecar_string(sidecar, "output", path_);

    DeviceGuard guard(device_, true);
    logger_.clear();
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw Error(Status::Backend, logger_.explain("TensorRT " + tensorrt.text() + " could not start"));
    engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine_) {
      throw Error(Status::EngineFile,
                  logger_.explain("TensorRT " + tensorrt.text() + " could not deserialise " + path_));
    }
    check_io();
    check_shapes();
    context_.reset(engine_->createExecutionContext());
    if (!context_) {
      throw Error(Status::Backend, logger_.explain("TensorRT could not create an execution context for " + path_));
    }
    cudaStream_t stream = nullptr;
    cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    stream_.reset(stream);
  }

  // Exactly the sidecar's input and output, both float32 (TensorRTEngine._check_io).
  void check_io() const {
    std::map<std::string, nvinfer1::TensorIOMode> modes;
    for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
      const char* tensor = engine_->getIOTensorName(i);
      if (tensor != nullptr) modes[tensor] = engine_->getTensorIOMode(tensor);
    }
    const std::map<std::string, nvinfer1::TensorIOMode> expected = {{input_name_, nvinfer1::TensorIOMode::kINPUT},
                                                                    {output_name_, nvinfer1::TensorIOMode::kOUTPUT}};
    if (modes != expected) {
      std::string names;
      for (const auto& entry : modes) names += (names.empty() ? "" : ", ") + repr(entry.first);
      throw Error(Status::EngineFile, path_ + " has I/O tensors [" + names + "], its sidecar says input " +
                                          repr(input_name_) + " and output " + repr(output_name_) +
                                          ": rebuild it with `kasf build`");
    }
    for (const std::string& tensor : {input_name_, output_name_}) {
      nvinfer1::DataType type = engine_->getTensorDataType(tensor.c_str());
      if (type != nvinfer1::DataType::kFLOAT) {
        throw Error(Status::EngineFile, path_ + "'s tensor " + repr(tensor) + " is " + data_type_name(type) +
                                            ", kasf's engines take and give float32: build it from a kasf ONNX "
                                            "export");
      }
    }
  }

  // [batch, n_frames, 17, 3] in and out, n_frames as the sidecar says; the batch range from
  // optimisation profile 0 (the one `kasf build` makes), which a new context uses.
  void check_shapes() {
    const char* input = input_name_.c_str();
    const nvinfer1::Dims in = engine_->getTensorShape(input);
    const nvinfer1::Dims out = engine_->getTensorShape(output_name_.c_str());
    auto sample_is = [this](const nvinfer1::Dims& dims, bool wildcards) {
      if (dims.nbDims != 4) return false;
      const int64_t want[3] = {n_frames_, kNumJoints, kChannels};
      for (int i = 0; i < 3; ++i) {
        if (dims.d[i + 1] != want[i] && !(wildcards && dims.d[i + 1] == -1)) return false;
      }
      return true;
    };
    const std::string expected = "[batch, " + std::to_string(n_frames_) + ", " + std::to_string(kNumJoints) + ", " +
                                 std::to_string(kChannels) + "]";
    if (!sample_is(in, true) || !sample_is(out, true)) {
      throw Error(Status::EngineFile, path_ + " takes " + repr(input_name_) + " " + dims_text(in) + " and gives " +
                                          repr(output_name_) + " " + dims_text(out) + "; its sidecar says n_frames " +
                                          std::to_string(n_frames_) + ", so both should be " + expected +
                                          ": rebuild it with `kasf build`");
    }
    if (in.d[0] >= 0) {  // a fixed batch: no profile range to read
      min_batch_ = max_batch_ = in.d[0];
    } else {
      const nvinfer1::Dims low = engine_->getProfileShape(input, 0, nvinfer1::OptProfileSelector::kMIN);
      const nvinfer1::Dims high = engine_->getProfileShape(input, 0, nvinfer1::OptProfileSelector::kMAX);
      if (!sample_is(low, false) || !sample_is(high, false)) {
        throw Error(Status::EngineFile, path_ + "'s optimisation profile for " + repr(input_name_) + " spans " +
                                            dims_text(low) + " to " + dims_text(high) + ", not " + expected +
                                            ": rebuild it with `kasf build`");
      }
      min_batch_ = low.d[0];
      max_batch_ = high.d[0];
    }
    if (min_batch_ < 1 || min_batch_ > max_batch_ || max_batch_ > (int64_t{1} << 30)) {
      throw Error(Status::EngineFile, path_ + " has the batch range " + std::to_string(min_batch_) + " to " +
                                          std::to_string(max_batch_) + ": rebuild it with `kasf build`");
    }
  }

  // Grows the staging and device buffers to `bytes` each (at least doubling, at most the profile's
  // maximum batch); the old ones stay until all four new ones exist.
  void reserve(size_t bytes) {
    if (bytes <= capacity_) return;
    const size_t most = static_cast<size_t>(max_batch_) * sample_bytes();
    const size_t size = std::min(most, std::max(bytes, 2 * capacity_));
    void* pointer = nullptr;
    cuda_check(cudaMalloc(&pointer, size), "cudaMalloc (the engine's input)");
    DevicePtr device_input(pointer);
    cuda_check(cudaMalloc(&pointer, size), "cudaMalloc (the engine's output)");
    DevicePtr device_output(pointer);
    cuda_check(cudaMallocHost(&pointer, size), "cudaMallocHost (pinned keypoints)");
    HostPtr host_input(pointer);
    cuda_check(cudaMallocHost(&pointer, size), "cudaMallocHost (pinned poses)");
    HostPtr host_output(pointer);
    device_input_ = std::move(device_input);
    device_output_ = std::move(device_output);
    host_input_ = std::move(host_input);
    host_output_ = std::move(host_output);
    capacity_ = size;
    bound_batch_ = 0;  // new addresses to give TensorRT
  }

  // Gives the context the batch's input shape and the buffers' addresses, when either changed.
  void bind(int64_t batch) {
    if (batch == bound_batch_) return;
    bound_batch_ = 0;
    logger_.clear();
    const nvinfer1::Dims shape{4, {batch, n_frames_, kNumJoints, kChannels}};
    if (!context_->setInputShape(input_name_.c_str(), shape)) {
      throw Error(Status::Backend, logger_.explain("TensorRT refused the input shape " + dims_text(shape) + " of " +
                                                   repr(input_name_) + " for " + path_ +
                                                   " (its optimisation profile takes batch " +
                                                   std::to_string(min_batch_) + " to " +
                                                   std::to_string(max_batch_) + ")"));
    }
    // The output buffer holds [batch, n_frames, 17, 3]: TensorRT must write no more than that.
    const nvinfer1::Dims out = context_->getTensorShape(output_name_.c_str());
    if (out.nbDims != 4 || out.d[0] != batch || out.d[1] != n_frames_ || out.d[2] != kNumJoints ||
        out.d[3] != kChannels) {
      throw Error(Status::Backend, path_ + " would give " + repr(output_name_) + " " + dims_text(out) +
                                       " for an input of " + dims_text(shape) + " (it should be the same shape): "
                                       "rebuild it with `kasf build`");
    }
    const std::pair<const std::string*, void*> buffers[] = {{&input_name_, device_input_.get()},
                                                            {&output_name_, device_output_.get()}};
    for (const auto& [tensor, buffer] : buffers) {
      if (!context_->setTensorAddress(tensor->c_str(), buffer)) {
        throw Error(Status::Backend,
                    logger_.explain("TensorRT refused the device buffer of " + repr(*tensor) + " for " + path_));
      }
    }
    bound_batch_ = batch;
  }

  // Everything on the GPU goes with its device current, in order: the context before the engine,
  // the engine before the runtime (the logger, a member, outlives them all).
  void release() noexcept {
    if (!runtime_ && !stream_ && capacity_ == 0) return;  // nothing on the GPU: leave CUDA alone
    DeviceGuard guard(device_, false);
    if (stream_) (void)cudaStreamSynchronize(stream_.get());
    context_.reset();
    engine_.reset();
    runtime_.reset();
    device_input_.reset();
    device_output_.reset();
    host_input_.reset();
    host_output_.reset();
    stream_.reset();
    (void)cudaGetLastError();
  }

  std::string path_;
  int device_ = 0;
  int n_frames_ = 0;
  int64_t min_batch_ = 1, max_batch_ = 0;
  std::string input_name_, output_name_;
  std::string notes_;

  Logger logger_;  // declared before, so destroyed after, what it logs for
  std::unique_ptr<nvinfer1::IRuntime> runtime_;  // TensorRT 10 objects are deleted with delete
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  StreamPtr stream_;
  DevicePtr device_input_, device_output_;
  HostPtr host_input_, host_output_;
  size_t capacity_ = 0;     // bytes in each of the four buffers
  int64_t bound_batch_ = 0;  // the batch the context's shape and addresses are set for; 0: none
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Backend> open_tensorrt(const std::string& path, const BackendOptions& options) {
  return std::make_unique<TensorRTBackend>(path, options);
}

}  // namespace kasf
