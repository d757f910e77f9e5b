// Result<T> and Error: how every keyhold library function reports failure.
//
// No exception crosses a library API. A function that can fail returns Result<T> (a value
// or an Error) or Result<void>. Error messages carry names and sizes, never secret bytes.
#ifndef KEYHOLD_CRYPTO_RESULT_H_
#define KEYHOLD_CRYPTO_RESULT_H_

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace keyhold {

// Few codes, each a class of failure a caller may act on differently. The CLI maps them to
// exit codes in one place (cli/exit_codes.h).
enum class ErrorCode : int {
  kInvalidArgument = 1,  // the caller passed something unusable (bad flag value, bad name)
  kNotFound,             // a named thing (file, key, slot, recipient) does not exist
  kAlreadyExists,        // refusing to overwrite or create a duplicate
  kIo,                   // the operating system failed a read, write, fsync, rename...
  kUnsupported,          // a version, suite or parameter this build does not implement
  kMalformed,            // input is not well formed or exceeds a documented limit
  kNoMatchingKey,        // nothing the caller holds opens this object
  kAuthFailed,           // header MAC, key commitment, wrap or keystore integrity check failed
  kPayloadAuthFailed,    // a payload chunk was modified, truncated, reordered or extended
  kContextMismatch,      // the object's encryption context differs from what was demanded
  kPolicyRefused,        // a key state or policy forbids the operation
  kWrongPassphrase,      // no unlock slot could be opened with what was supplied
  kInsecurePermissions,  // a keystore file or directory is accessible to others
  kCancelled,            // interrupted by a signal
  kInternal,             // a bug or an unexpected library failure
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // lowercase, no trailing period, no secrets
  std::string hint;     // optional: what the user can do about it

  Error() = default;
  Error(ErrorCode c, std::string m, std::string h = {})
      : code(c), message(std::move(m)), hint(std::move(h)) {}
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return Get(); }
  const T& value() const& { return const_cast<Result*>(this)->Get(); }
  T&& value() && { return std::move(Get()); }
  T* operator->() { return &Get(); }
  const T* operator->() const { return &const_cast<Result*>(this)->Get(); }
  T& operator*() & { return Get(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::move(std::get<1>(v_)); }

 private:
  T& Get() {
    if (v_.index() != 0) std::abort();  // reading the value of a failed Result is a bug
    return std::get<0>(v_);
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), failed_(true) {}  // NOLINT: implicit
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& { return err_; }
  Error&& error() && { return std::move(err_); }

 private:
  Error err_;
  bool failed_ = false;
};

using Status = Result<void>;

inline Status OkStatus() { return {}; }

}  // namespace keyhold

#define KH_CONCAT_INNER_(a, b) a##b
#define KH_CONCAT_(a, b) KH_CONCAT_INNER_(a, b)

// Returns the error of `expr` (a Result) from the enclosing function if it failed.
#define KH_RETURN_IF_ERROR(expr)                                \
  do {                                                          \
    auto kh_status_ = (expr);                                   \
    if (!kh_status_.ok()) return std::move(kh_status_).error(); \
  } while (0)

// `KH_ASSIGN_OR_RETURN(auto x, F());` declares x from F()'s value or returns its error.
#define KH_ASSIGN_OR_RETURN(lhs, expr) \
  KH_ASSIGN_OR_RETURN_IMPL_(KH_CONCAT_(kh_result_, __LINE__), lhs, expr)
#define KH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).error();   \
  lhs = std::move(tmp).value()

#endif  // KEYHOLD_CRYPTO_RESULT_H_
