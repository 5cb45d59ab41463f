// The C++ wrapper (kasf/kasf.hpp): RAII handle, failures as kasf::RuntimeError with the C API's
// status and message, poses as vectors, moves that leave one owner.
//
//   wrapper_test ENGINE
#include <cmath>
#include <iostream>
#include <string>
#include <utility>

#include "kasf/kasf.hpp"

namespace {

int failures = 0;

void expect(bool condition, const std::string& what) {
  if (!condition) {
    std::cerr << "FAILED: " << what << "\n";
    ++failures;
  }
}

// The call throws kasf::RuntimeError with this status and a message containing fragment.
template <typename Call>
void expect_throw(Call&& call, kasf_status status, const std::string& fragment, const std::string& what) {
  try {
    call();
    expect(false, what + ": no exception");
  } catch (const kasf::RuntimeError& err) {
    expect(err.status() == status, what + ": status " + kasf_status_name(err.status()));
    expect(std::string(err.what()).find(fragment) != std::string::npos, what + ": message " + err.what());
  }
}

kasf::Keypoints person(float shift) {
  kasf::Keypoints keypoints{};
  for (int j = 0; j < KASF_NUM_JOINTS; ++j) {
    keypoints[j * 3] = 0.03f * static_cast<float>(j % 4) + shift;
    keypoints[j * 3 + 1] = 0.05f * static_cast<float>(j) - 0.4f;
    keypoints[j * 3 + 2] = 1.0f;
  }
  return keypoints;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: wrapper_test ENGINE\n";
    return 2;
  }
  const std::string engine = argv[1];
  expect_throw([] { kasf::Runtime("/nonexistent/model.pt2"); }, KASF_ENGINE_FILE, "does not exist", "missing file");

  kasf_options options = kasf_default_options();
  options.mode = KASF_CENTRED;
  options.threads = 1;
  kasf::Runtime runtime(engine, options);
  expect(runtime.n_frames() == 27 && runtime.backend() != "" && runtime.notes().empty(), "runtime facts");

  kasf::Keypoints bad = person(0.0f);
  bad[5 * 3 + 2] = NAN;
  expect_throw([&] { runtime.push(1, bad); }, KASF_BAD_INPUT, "joint 5 (left_knee) has a NaN confidence", "NaN");
  expect_throw([&] { runtime.close(42); }, KASF_UNKNOWN_TRACK, "never opened", "unknown track");

  size_t returned = 0;
  for (int frame = 0; frame < 16; ++frame) {
    runtime.push(1, person(0.001f * static_cast<float>(frame)));
    returned += runtime.process().size();
  }
  expect(returned == 16 - 13, "centred mode returns frames 0.. 2 by frame 15, got " + std::to_string(returned));
  kasf::Runtime moved = std::move(runtime);
  expect(runtime.handle() == nullptr && moved.num_tracks() == 1, "a move leaves one owner");
  const std::vector<kasf_pose> flushed = moved.close_all();
  expect(flushed.size() == 13 && flushed.front().track_frame == 3 && flushed.back().track_frame == 15,
         "close_all flushes the 13 pending frames");
  expect(std::isfinite(flushed.back().joints[16][2]), "flushed poses are finite");

  std::vector<float> windows(2 * 27 * KASF_NUM_JOINTS * 3, 0.5f), poses(windows.size());
  moved.infer(windows, poses);
  expect(std::isfinite(poses.back()), "infer fills the poses");
  std::vector<float> ragged(windows.size() - 1);
  expect_throw([&] { moved.infer(ragged, poses); }, KASF_INVALID_ARGUMENT, "whole", "ragged windows");

  if (failures > 0) {
    std::cout << "wrapper_test: " << failures << " checks failed\n";
    return 1;
  }
  std::cout << "wrapper_test: all checks passed\n";
  return 0;
}
