// An owned file descriptor, closed on destruction. One type for every fd the CLI opens.
#ifndef KEYHOLD_CLI_UNIQUE_FD_H_
#define KEYHOLD_CLI_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace keyhold::cli {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Standard streams are borrowed, never closed.
  void Reset() {
    if (fd_ > STDERR_FILENO) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_UNIQUE_FD_H_
