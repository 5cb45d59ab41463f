// kasf_replay: what a capture app does with the kasf runtime, fed from a keypoint file instead of
// a camera. Reads a kasf keypoint CSV (kasf.capture), pushes each frame's people, processes the
// frame, closes every track at the end and writes the poses CSV, as `kasf replay` does.
//
//   kasf_replay ENGINE KEYPOINTS.csv POSES.csv [--mode causal|centred] [--lag N] [--stride N] [--blend]
//               [--image-size W H] [--close-after N] [--threads N] [--backend NAME]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kasf/kasf.hpp"

namespace {

struct Row {
  int64_t frame;
  int64_t track;
  kasf::Keypoints keypoints;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "kasf_replay: " << problem << "\n"
            << "usage: kasf_replay ENGINE KEYPOINTS.csv POSES.csv [--mode causal|centred] [--lag N] [--stride N] [--blend]\n"
            << "                   [--image-size W H] [--close-after N] [--threads N] [--backend NAME]\n";
  std::exit(2);
}

std::string header(const char* kind, const char* axes) {
  std::string line = kind;
  for (int joint = 0; joint < KASF_NUM_JOINTS; ++joint) {
    for (const char* axis = axes; *axis != '\0'; ++axis) line += std::string(",") + *axis + "_" + kasf_joint_name(joint);
  }
  return line;
}

std::vector<Row> read_keypoints(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot read keypoint file " + path);
  std::string line;
  if (!std::getline(file, line) || line != header("frame,track", "xyc")) {
    throw std::runtime_error(path + " is not a kasf keypoint file (header frame,track,x_pelvis,y_pelvis,c_pelvis,...)");
  }
  std::vector<Row> rows;
  for (int number = 2; std::getline(file, line); ++number) {
    std::vector<std::string> cells;
    std::stringstream stream(line);
    for (std::string cell; std::getline(stream, cell, ',');) cells.push_back(cell);
    const std::string where = path + " line " + std::to_string(number);
    if (cells.size() != 2 + KASF_NUM_JOINTS * 3) throw std::runtime_error(where + ": wrong number of values");
    Row row{};
    try {
      row.frame = std::stoll(cells[0]);
      row.track = std::stoll(cells[1]);
      for (size_t i = 0; i < row.keypoints.size(); ++i) row.keypoints[i] = std::stof(cells[2 + i]);
    } catch (const std::exception&) {
      throw std::runtime_error(where + ": not a number");
    }
    if (row.frame < 0 || (!rows.empty() && row.frame < rows.back().frame)) {
      throw std::runtime_error(where + ": rows must be in frame order, from frame 0");
    }
    rows.push_back(row);
  }
  return rows;
}

void write_poses(std::ostream& out, const std::vector<kasf_pose>& poses) {
  char number[32];
  for (const kasf_pose& pose : poses) {
    out << pose.frame << ',' << pose.track_id << ',' << pose.track_frame;
    for (const auto& joint : pose.joints) {
      for (float value : joint) {
        std::snprintf(number, sizeof(number), "%.9g", value);
        out << ',' << number;
      }
    }
    out << '\n';
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) usage("ENGINE, KEYPOINTS.csv and POSES.csv are required");
  kasf_options options = kasf_default_options();
  std::string backend;
  for (int i = 4; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--blend") {
      options.blend = 1;
      continue;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(flag + " needs a value");
      return argv[++i];
    };
    try {
      if (flag == "--mode") {
        const std::string mode = value();
        if (mode != "causal" && mode != "centred") usage("--mode is causal or centred");
        options.mode = mode == "causal" ? KASF_CAUSAL : KASF_CENTRED;
      } else if (flag == "--lag") {
        options.lag = std::stoi(value());
      } else if (flag == "--stride") {
        options.stride = std::stoi(value());
      } else if (flag == "--image-size") {
        options.image_width = std::stof(value());
        options.image_height = std::stof(value());
      } else if (flag == "--close-after") {
        options.close_after = std::stoi(value());
      } else if (flag == "--threads") {
        options.threads = std::stoi(value());
      } else if (flag == "--backend") {
        backend = value();
        options.backend = backend.c_str();
      } else {
        usage("unknown option " + flag);
      }
    } catch (const std::logic_error&) {
      usage(flag + " needs a number");
    }
  }
  try {
    const std::vector<Row> rows = read_keypoints(argv[2]);
    kasf::Runtime runtime(argv[1], options);
    std::ofstream out(argv[3]);
    if (!out) throw std::runtime_error(std::string("cannot write ") + argv[3]);
    out << header("frame,track,track_frame", "xyz") << '\n';
    size_t next = 0, count = 0;
    const int64_t frames = rows.empty() ? 0 : rows.back().frame + 1;
    for (int64_t frame = 0; frame < frames; ++frame) {
      for (; next < rows.size() && rows[next].frame == frame; ++next) runtime.push(rows[next].track, rows[next].keypoints);
      const std::vector<kasf_pose> poses = runtime.process();
      write_poses(out, poses);
      count += poses.size();
    }
    const std::vector<kasf_pose> flushed = runtime.close_all();
    write_poses(out, flushed);
    count += flushed.size();
    std::cout << frames << " frames, " << count + 0 << " poses (" << runtime.backend() << ") -> " << argv[3] << "\n";
  } catch (const std::exception& err) {
    std::cerr << "kasf_replay: " << err.what() << "\n";
    return 1;
  }
  return 0;
}
