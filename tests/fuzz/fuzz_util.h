// Shared helpers for the libFuzzer targets: a property check that aborts (so libFuzzer
// records the input as a crash), a private temp directory, and in-memory sources and sinks.
#ifndef KEYHOLD_TESTS_FUZZ_FUZZ_UTIL_H_
#define KEYHOLD_TESTS_FUZZ_FUZZ_UTIL_H_

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/result.h"

// A violated property is a finding: print why and abort so libFuzzer saves the input.
#define FUZZ_CHECK(cond)                                                                       \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "fuzz property violated: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

namespace keyhold::fuzz {

// A mode-0700 directory under TMPDIR that lives for the whole fuzzing process.
inline std::string MakePrivateTempDir(const char* tag) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/kh-fuzz-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  return buf.data();
}

// Replaces `path` with exactly `data`, mode 0600. Aborts on an I/O error: that is the
// harness failing, not the code under test.
inline void WritePrivateFile(const std::string& path, std::span<const uint8_t> data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    std::perror("open");
    std::abort();
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n <= 0) {
      std::perror("write");
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

// Reads from a byte span, handing out at most `step` bytes per call (short reads on purpose).
class SpanSource final : public cobblestone::Source {
 public:
  SpanSource(std::span<const uint8_t> data, size_t step) : data_(data), step_(step) {}
  Result<size_t> Read(std::span<uint8_t> out) override {
    size_t n = std::min({out.size(), data_.size() - pos_, step_});
    if (n > 0) std::memcpy(out.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  size_t position() const { return pos_; }

 private:
  std::span<const uint8_t> data_;
  size_t step_;
  size_t pos_ = 0;
};

class VectorSink final : public cobblestone::Sink {
 public:
  Status Write(std::span<const uint8_t> data) override {
    out_.insert(out_.end(), data.begin(), data.end());
    return OkStatus();
  }
  const std::vector<uint8_t>& bytes() const { return out_; }

 private:
  std::vector<uint8_t> out_;
};

}  // namespace keyhold::fuzz

#endif  // KEYHOLD_TESTS_FUZZ_FUZZ_UTIL_H_
