// keyhold keygen [-o FILE]: a new X25519 identity. The recipient string goes alone to stdout
// when the identity goes to a file, so R=$(keyhold keygen -o me.key) captures it.
#include <ctime>

#include "commands/commands.h"
#include "exit_codes.h"
#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/x25519.h"
#include "object_ops.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct KeygenOptions {
  std::string output;
};

std::string Now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

Result<int> RunKeygen(const KeygenOptions& opts) {
  X25519KeyPair kp = X25519Generate();
  const std::string recipient = envelope::EncodeRecipient(kp.public_key);
  // The identity text is secret: build it in a wiped buffer.
  std::string identity = envelope::EncodeIdentity(kp.secret);
  std::string head = "# created: " + Now() + "\n# recipient: " + recipient + "\n";
  WipingBuffer text(head.begin(), head.end());
  text.insert(text.end(), identity.begin(), identity.end());
  text.push_back('\n');
  WipeMemory(identity.data(), identity.size());

  if (IsStdio(opts.output)) {
    KH_RETURN_IF_ERROR(WriteAll(1, text));
    if (!Quiet()) std::fprintf(stderr, "Recipient: %s\n", recipient.c_str());
    return kExitOk;
  }
  // 0600 from creation, never overwriting an existing identity.
  KH_RETURN_IF_ERROR(WriteFileAtomically(opts.output, text, AtomicFile::Overwrite::kNo, 0600));
  std::printf("%s\n", recipient.c_str());
  return kExitOk;
}

}  // namespace

void RegisterKeygen(CLI::App& app, Context& /*ctx*/, Runner& run) {
  auto opts = std::make_shared<KeygenOptions>();
  CLI::App* cmd =
      AddCommand(app, "keygen", "create an X25519 identity; prints its recipient string (kh1...)");
  cmd->add_option("-o,--output", opts->output,
                  "write the identity to FILE (mode 0600, never overwritten); default stdout");
  cmd->callback([opts, &run] { run = [opts] { return RunKeygen(*opts); }; });
}

}  // namespace keyhold::cli
