// AOTInductor backend: a `kasf export --aoti` package (.pt2) run through libtorch's
// AOTIModelPackageLoader, the same compiled library kasf's Python aoti backend runs.
#include <ATen/Parallel.h>
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "backend.hpp"

namespace kasf {

namespace {

std::string first_line(const std::string& text) {
  const std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? "no reason given" : line;
}

int metadata_int(const std::unordered_map<std::string, std::string>& metadata, const std::string& key,
                 const std::string& path) {
  auto found = metadata.find(key);
  try {
    if (found != metadata.end()) return std::stoi(found->second);
  } catch (const std::exception&) {
  }
  throw Error(Status::EngineFile, path + " has no usable '" + key + "' in its kasf metadata: export it again with "
                                         "`kasf export --aoti`");
}

class AotiBackend : public Backend {
 public:
  AotiBackend(const std::string& path, const BackendOptions& options) : path_(path) {
    if (!std::filesystem::is_regular_file(path)) throw Error(Status::EngineFile, "engine file " + path + " does not exist");
    if (!std::ifstream(path).good()) throw Error(Status::EngineFile, "cannot read engine file " + path);
    std::unordered_map<std::string, std::string> metadata;
    try {
      metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
    } catch (const std::exception& err) {
      throw Error(Status::EngineFile, path + " is not a loadable AOTInductor package (" + first_line(err.what()) +
                                          "): export it again with `kasf export --aoti`");
    }
    check_metadata(metadata);
    n_frames_ = metadata_int(metadata, "kasf_n_frames", path);
    max_batch_ = metadata_int(metadata, "kasf_max_batch", path);
    const auto device = metadata.find("AOTI_DEVICE_KEY");
    const bool cuda = device != metadata.end() && device->second == "cuda";
    device_ = cuda ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options.device)) : c10::Device(c10::kCPU);
    // The compiled kernels parallelise with OpenMP, whose thread count libtorch sets.
    if (options.threads > 0) at::set_num_threads(options.threads);
    try {
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          path, "model", false, 1, cuda ? device_.index() : static_cast<c10::DeviceIndex>(-1));
    } catch (const std::exception& err) {
      throw Error(Status::EngineFile, "libtorch could not load " + path + " (" + first_line(err.what()) +
                                          "); a package runs only on the device, and for the CPU the instruction "
                                          "set, it was compiled for");
    }
  }

  std::string name() const override { return "aoti"; }
  int n_frames() const override { return n_frames_; }
  int max_batch() const override { return max_batch_; }

  void infer(const float* keypoints, int64_t batch, float* poses) override {
    if (batch < 1 || batch > max_batch_) {
      throw Error(Status::BadInput, "batch " + std::to_string(batch) + " is outside 1 to " + std::to_string(max_batch_) +
                                        ", the batches " + path_ + " was compiled for");
    }
    const std::vector<int64_t> shape = {batch, n_frames_, kNumJoints, kChannels};
    try {
      c10::InferenceMode inference;
      // from_blob does not copy; the package never writes its inputs.
      at::Tensor input = at::from_blob(const_cast<float*>(keypoints), shape, at::kFloat).to(device_);
      std::vector<at::Tensor> outputs = loader_->run({input});
      if (outputs.size() != 1 || outputs[0].sizes() != at::IntArrayRef(shape) ||
          outputs[0].scalar_type() != at::kFloat) {
        throw Error(Status::Backend, path_ + " returned outputs other than one float32 [batch, " +
                                         std::to_string(n_frames_) + ", 17, 3] tensor");
      }
      at::Tensor output = outputs[0].to(at::kCPU).contiguous();
      std::memcpy(poses, output.data_ptr<float>(), output.numel() * sizeof(float));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& err) {
      throw Error(Status::Backend, "running " + path_ + " failed: " + first_line(err.what()));
    }
  }

 private:
  void check_metadata(const std::unordered_map<std::string, std::string>& metadata) const {
    auto version = metadata.find("kasf_metadata_version");
    if (version == metadata.end()) {
      throw Error(Status::EngineFile, path_ + " has no kasf metadata: export it with `kasf export --aoti`");
    }
    if (metadata_int(metadata, "kasf_metadata_version", path_) > kMetadataVersion) {
      throw Error(Status::EngineFile, path_ + "'s kasf metadata is format version " + version->second +
                                          "; this kasf runtime reads up to " + std::to_string(kMetadataVersion) +
                                          ": upgrade the kasf runtime");
    }
  }

  std::string path_;
  int n_frames_ = 0;
  int max_batch_ = 0;
  c10::Device device_{c10::kCPU};
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

}  // namespace

std::unique_ptr<Backend> open_aoti(const std::string& path, const BackendOptions& options) {
  return std::make_unique<AotiBackend>(path, options);
}

}  // namespace kasf
