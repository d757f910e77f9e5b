#include "keyhold/keystore/location.h"

#include <cstdlib>

namespace keyhold::keystore {

Result<std::string> ResolveKeystoreDir(const std::string& explicit_dir) {
  if (!explicit_dir.empty()) return explicit_dir;
  if (const char* home = std::getenv("KEYHOLD_HOME"); home != nullptr && *home != '\0') {
    return std::string(home);
  }
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg == '/') {
    return std::string(xdg) + "/keyhold";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return std::string(home) + "/.local/share/keyhold";
  }
  return Error(ErrorCode::kNotFound, "cannot locate the keystore: HOME is not set",
               "pass --keystore DIR or set KEYHOLD_HOME");
}

}  // namespace keyhold::keystore
