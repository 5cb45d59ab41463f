// One interface over the inference backends the runtime was configured with (AOTInductor,
// ONNX Runtime, TensorRT): batched keypoint windows in, poses out, host float32 buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace kasf {

constexpr int kNumJoints = 17;
constexpr int kChannels = 3;                 // x, y, confidence in; x, y, z out
constexpr int kMetadataVersion = 1;          // the kasf metadata format this runtime reads

// A failure with the C API status it maps to; what() is the message users see.
enum class Status : int {
  Ok = 0,
  InvalidArgument = 1,    // null pointers, bad options
  BadInput = 2,           // keypoints with the wrong joint count, NaN, confidence out of range
  UnknownTrack = 3,       // a track id that is not open
  ClosedTrack = 4,        // keypoints for a track that was closed
  NotReady = 5,           // no pose for the track from the last frame (centred mode's first frames)
  EngineFile = 6,         // a missing, corrupt, foreign or incompatible engine file
  Backend = 7,            // the backend failed while running
  Unsupported = 8,        // a backend this build was configured without
};

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

struct BackendOptions {
  int threads = 0;        // intra-op CPU threads; 0: the backend's default
  int device = 0;         // CUDA device index, for GPU backends
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual int n_frames() const = 0;
  virtual int max_batch() const = 0;
  // keypoints: [batch, n_frames, 17, 3] float32; poses: [batch, n_frames, 17, 3] float32.
  virtual void infer(const float* keypoints, int64_t batch, float* poses) = 0;
  // What the backend accepted but a user should know (e.g. a plan built on another GPU model).
  virtual std::string notes() const { return ""; }
};

// Each backend's factory; the ones this build lacks throw Error(Status::Unsupported, ...).
std::unique_ptr<Backend> open_aoti(const std::string& path, const BackendOptions& options);
std::unique_ptr<Backend> open_onnxruntime(const std::string& path, const BackendOptions& options);
std::unique_ptr<Backend> open_tensorrt(const std::string& path, const BackendOptions& options);

// The backend named ("aoti", "onnxruntime", "tensorrt"), or the one the file's suffix names
// (.pt2, .onnx, .engine/.plan) when name is empty.
std::unique_ptr<Backend> open_backend(const std::string& path, const std::string& name, const BackendOptions& options);

// The backends compiled into this build.
std::vector<std::string> available_backends();

}  // namespace kasf
