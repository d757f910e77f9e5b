#include "audit_hooks.h"

#include <ctime>

#include "keyhold/keystore/audit_log.h"

namespace keyhold::cli {

void AuditKeyUse(Context& ctx, const std::string& operation, const std::vector<std::string>& keys,
                 const std::string& object) {
  keystore::AuditLog* log = ctx.Audit();
  if (log == nullptr) return;  // the keystore was not unlocked, so none of its keys was used
  // Buffered; a failure is kept by the AuditLog and reported by Context::FinishAudit, which
  // main calls after every command.
  (void)log->RecordKeyUse(operation, keys, object);
}

Status AuditKeystoreInit(const std::string& dir, const SecretBytes& passphrase) {
  auto failed = [&](const Error& e) {
    return Error(ErrorCode::kIo,
                 "the keystore was created, but its audit log could not be started: " + e.message,
                 e.hint);
  };
  keystore::Unlocker unlocker;
  unlocker.passphrase = passphrase.Clone();
  auto ks = keystore::Keystore::Open(dir, unlocker);
  if (!ks.ok()) return failed(ks.error());
  auto key = ks->DeriveSubkey(keystore::kAuditSubkeyLabel);
  if (!key.ok()) return failed(key.error());
  auto log = keystore::AuditLog::Open(dir, std::move(key).value(), 0);
  if (!log.ok()) return failed(log.error());
  keystore::AuditEvent event;
  event.event = "keystore.init";
  for (const auto& slot : ks->ListSlots()) {
    event.fields.emplace_back("slot", slot.id);
    event.fields.emplace_back("kdf", "argon2id t=" + std::to_string(slot.kdf.iterations) +
                                         " m=" + std::to_string(slot.kdf.memory_kib) +
                                         " p=" + std::to_string(slot.kdf.parallelism));
    break;  // a new keystore has exactly one slot
  }
  event.generation = ks->generation();
  event.time_unix = static_cast<int64_t>(std::time(nullptr));
  Status s = (*log)->Record(event);
  if (!s.ok()) return failed(s.error());
  return OkStatus();
}

}  // namespace keyhold::cli
