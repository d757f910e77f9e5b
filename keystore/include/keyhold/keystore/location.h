// Where a keystore lives.
#ifndef KEYHOLD_KEYSTORE_LOCATION_H_
#define KEYHOLD_KEYSTORE_LOCATION_H_

#include <string>

#include "keyhold/crypto/result.h"

namespace keyhold::keystore {

// The keystore directory: `explicit_dir` if non-empty, else $KEYHOLD_HOME, else
// ${XDG_DATA_HOME:-$HOME/.local/share}/keyhold. kNotFound if none can be determined
// (no HOME and nothing else set).
Result<std::string> ResolveKeystoreDir(const std::string& explicit_dir);

}  // namespace keyhold::keystore

#endif  // KEYHOLD_KEYSTORE_LOCATION_H_
