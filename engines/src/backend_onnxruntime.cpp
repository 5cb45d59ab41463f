// ONNX Runtime backend: a graph written by `kasf export`, run by the CPU execution provider on the
// caller's buffers. The checks and messages follow the Python engine (kasf/engines/onnxruntime.py,
// kasf/export/onnx.py's read_metadata).
#include <onnxruntime_cxx_api.h>

#include <charconv>
#include <filesystem>
#include <optional>

#include "backend.hpp"

namespace kasf {
namespace {

constexpr const char* kInputName = "keypoints_2d";
constexpr const char* kOutputName = "poses_3d";
// An ONNX graph's batch axis has no upper bound in the file: any batch runs.
constexpr int kAnyBatch = 1 << 20;

struct TensorInfo {
  std::string name;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;  // also for non-tensors
  std::vector<int64_t> shape;                                                  // -1: a dynamic axis
};

std::optional<std::string> lookup(const Ort::ModelMetadata& metadata, const char* key) {
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::AllocatedStringPtr value = metadata.LookupCustomMetadataMapAllocated(key, allocator);
  if (!value) return std::nullopt;
  return std::string(value.get());
}

// Refuses a graph without kasf's metadata, or one in a newer metadata format; returns its precision.
// Graphs from before kasf_metadata_version existed are format 1, as kasf.export.artifact.read_metadata reads them.
std::string check_metadata(const Ort::Session& session, const std::string& path) {
  Ort::ModelMetadata metadata = session.GetModelMetadata();
  if (!lookup(metadata, "kasf_model_config")) {
    throw Error(Status::EngineFile, path + " has no kasf metadata: it was not exported by `kasf export` "
                                           "(export it with `kasf export`)");
  }
  const std::string version = lookup(metadata, "kasf_metadata_version").value_or("1");
  int written = 0;
  const char* end = version.data() + version.size();
  auto [parsed, failure] = std::from_chars(version.data(), end, written);
  if (failure != std::errc() || parsed != end || written > kMetadataVersion) {
    throw Error(Status::EngineFile,
                path + ": its kasf metadata is format version " + version + " (kasf " +
                    lookup(metadata, "kasf_version").value_or("?") + "); this runtime reads up to " +
                    std::to_string(kMetadataVersion) + ": written by a newer kasf; upgrade the kasf runtime");
  }
  return lookup(metadata, "kasf_precision").value_or("fp32");
}

TensorInfo tensor_info(const std::string& name, const Ort::TypeInfo& type) {
  TensorInfo info;
  info.name = name;
  if (type.GetONNXType() == ONNX_TYPE_TENSOR) {  // other types have no tensor info to read
    auto tensor = type.GetTensorTypeAndShapeInfo();
    info.type = tensor.GetElementType();
    info.shape = tensor.GetShape();
  }
  return info;
}

// The session's inputs (outputs = false) or outputs.
std::vector<TensorInfo> io_tensors(const Ort::Session& session, bool outputs) {
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<TensorInfo> infos;
  const size_t count = outputs ? session.GetOutputCount() : session.GetInputCount();
  for (size_t i = 0; i < count; ++i) {
    infos.push_back(outputs ? tensor_info(session.GetOutputNameAllocated(i, allocator).get(), session.GetOutputTypeInfo(i))
                            : tensor_info(session.GetInputNameAllocated(i, allocator).get(), session.GetInputTypeInfo(i)));
  }
  return infos;
}

// "keypoints_2d float32 [?, 27, 17, 3], ...", for messages.
std::string describe(const std::vector<TensorInfo>& infos) {
  std::string text;
  for (const TensorInfo& info : infos) {
    if (!text.empty()) text += ", ";
    text += info.name + (info.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
                             ? " float32 ["
                             : " ONNX element type " + std::to_string(info.type) + " [");
    for (size_t axis = 0; axis < info.shape.size(); ++axis) {
      text += (axis ? ", " : "") + (info.shape[axis] < 0 ? std::string("?") : std::to_string(info.shape[axis]));
    }
    text += "]";
  }
  return text.empty() ? "nothing" : text;
}

bool is_pose_tensor(const TensorInfo& info, const char* name) {
  return info.name == name && info.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT && info.shape.size() == 4 &&
         info.shape[1] > 0 && info.shape[2] == kNumJoints && info.shape[3] == kChannels;
}

// Refuses a graph that is not keypoints_2d -> poses_3d, float32 [batch, T, 17, 3]; returns T.
int check_io(const Ort::Session& session, const std::string& path) {
  std::vector<TensorInfo> in = io_tensors(session, false), out = io_tensors(session, true);
  if (in.size() != 1 || out.size() != 1 || !is_pose_tensor(in[0], kInputName) ||
      !is_pose_tensor(out[0], kOutputName) || in[0].shape[1] != out[0].shape[1]) {
    throw Error(Status::EngineFile, path + " is not a kasf pose graph: it must take " + kInputName + " and give " +
                                        kOutputName + ", both float32 [batch, T, 17, 3]; it takes " + describe(in) +
                                        " and gives " + describe(out));
  }
  return static_cast<int>(in[0].shape[1]);
}

class OnnxRuntimeBackend final : public Backend {
 public:
  OnnxRuntimeBackend(const std::string& path, const BackendOptions& options)
      : env_(ORT_LOGGING_LEVEL_WARNING, "kasf"), path_(path) {
    if (!std::filesystem::is_regular_file(path)) {
      throw Error(Status::EngineFile, "ONNX model " + path + " does not exist");
    }
    // The optimisation level depends on the precision in the metadata, and ONNX Runtime reads metadata
    // only from a session: a first, unoptimised one-thread session reads it and checks the graph.
    std::string precision;
    {
      Ort::SessionOptions probe_options;
      probe_options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_DISABLE_ALL).SetIntraOpNumThreads(1);
      Ort::Session probe(env_, path.c_str(), probe_options);
      precision = check_metadata(probe, path);
      n_frames_ = check_io(probe, path);
    }
    Ort::SessionOptions session_options;
    if (options.threads > 0) session_options.SetIntraOpNumThreads(options.threads);
    // ORT_ENABLE_ALL has crashed ONNX Runtime on FP16 graphs (see the README); EXTENDED is safe.
    session_options.SetGraphOptimizationLevel(precision == "fp16" ? GraphOptimizationLevel::ORT_ENABLE_EXTENDED
                                                                  : GraphOptimizationLevel::ORT_ENABLE_ALL);
    session_ = Ort::Session(env_, path.c_str(), session_options);
  }

  std::string name() const override { return "onnxruntime"; }
  int n_frames() const override { return n_frames_; }
  int max_batch() const override { return kAnyBatch; }

  void infer(const float* keypoints, int64_t batch, float* poses) override {
    if (batch < 1) throw Error(Status::InvalidArgument, "batch must be at least 1, got " + std::to_string(batch));
    const int64_t shape[] = {batch, n_frames_, kNumJoints, kChannels};
    const size_t count = static_cast<size_t>(batch) * n_frames_ * kNumJoints * kChannels;
    try {
      // The caller's buffers, not copies. ONNX Runtime only reads an input, but its API takes non-const data.
      Ort::Value input = Ort::Value::CreateTensor<float>(memory_, const_cast<float*>(keypoints), count, shape, 4);
      Ort::Value output = Ort::Value::CreateTensor<float>(memory_, poses, count, shape, 4);
      session_.Run(Ort::RunOptions{nullptr}, &kInputName, &input, 1, &kOutputName, &output, 1);
    } catch (const Ort::Exception& err) {
      throw Error(Status::Backend, "ONNX Runtime failed running " + path_ + ": " + err.what());
    }
  }

 private:
  Ort::Env env_;  // declared before the session: ONNX Runtime needs it to outlive its sessions
  Ort::Session session_{nullptr};
  Ort::MemoryInfo memory_ = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::string path_;
  int n_frames_ = 0;
};

}  // namespace

std::unique_ptr<Backend> open_onnxruntime(const std::string& path, const BackendOptions& options) {
  try {
    return std::make_unique<OnnxRuntimeBackend>(path, options);
  } catch (const Ort::Exception& err) {
    if (err.GetOrtErrorCode() == ORT_INVALID_PROTOBUF) {
      throw Error(Status::EngineFile, path + " is not an ONNX model, or it is truncated: it does not parse as one "
                                             "(export it again with `kasf export`)");
    }
    throw Error(Status::EngineFile, "ONNX Runtime cannot load " + path + ": " + err.what());
  }
}

}  // namespace kasf
