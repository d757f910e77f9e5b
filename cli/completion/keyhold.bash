# bash completion for keyhold (installed by `cmake --install` as
# share/bash-completion/completions/keyhold).
_keyhold() {
  local cur prev words cword
  _init_completion 2>/dev/null || {
    cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
    words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
  }
  local globals="--keystore --passphrase-file --passphrase-fd --identity -i --json -q --quiet --help --version"
  local commands="init slot keygen recipient key encrypt decrypt inspect rewrap reencrypt scan doctor log"
  case "$prev" in
    --keystore|-O|--output-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --passphrase-file|--identity|-i|-o|--output|--manifest|--new-passphrase-file)
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  local cmd="" sub="" i
  for ((i = 1; i < cword; i++)); do
    case "${words[i]}" in
      -*) ;;
      *) if [ -z "$cmd" ]; then cmd=${words[i]}; elif [ -z "$sub" ]; then sub=${words[i]}; fi ;;
    esac
  done
  case "$cmd" in
    "") COMPREPLY=($(compgen -W "$commands $globals" -- "$cur")) ;;
    slot) [ -z "$sub" ] && COMPREPLY=($(compgen -W "list add-passphrase add-recipient remove" -- "$cur")) ;;
    recipient) [ -z "$sub" ] && COMPREPLY=($(compgen -W "add list remove" -- "$cur")) ;;
    key) [ -z "$sub" ] && COMPREPLY=($(compgen -W "create list show rotate retire disable enable destroy policy default" -- "$cur"))
         [ "$sub" = destroy ] && COMPREPLY+=($(compgen -W "--yes-destroy-key-material --scan --force" -- "$cur")) ;;
    log) [ -z "$sub" ] && COMPREPLY=($(compgen -W "show verify" -- "$cur")) ;;
    encrypt) COMPREPLY=($(compgen -W "-k -r -c -o -O --detached --force -j" -- "$cur") $(compgen -f -- "$cur")) ;;
    decrypt) COMPREPLY=($(compgen -W "--expect-context -o -O --force -j" -- "$cur") $(compgen -f -- "$cur")) ;;
    rewrap|reencrypt) COMPREPLY=($(compgen -W "-j --to --add-recipient --remove-recipient --from --shard --manifest --dry-run" -- "$cur") $(compgen -f -- "$cur")) ;;
    *) COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
}
complete -F _keyhold keyhold
