# bash completion for rollout: verbs, their flags and service names. The verbs and flags come from
# the binary's own usage text (`rollout --help`, `rollout VERB --help`), so they never drift from
# the command table; service names come from the daemon (`rollout status -o json`), asked with a
# 1 s limit and quietly: without a daemon there are just no names to offer.

# _rollout_usage BIN [VERB]: the usage text (some verbs print it on stderr).
_rollout_usage()
{
	"$1" ${2:+"$2"} --help 2>&1 </dev/null
}

# The verbs: the lines of `rollout --help` under "commands:" that start with two spaces and a word.
_rollout_verbs()
{
	_rollout_usage "$1" | sed -n 's/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p'
	echo help
}

# The services the daemon knows, for `--data DIR` given in $2 (may be empty).
_rollout_services()
{
	local bin=$1; shift
	timeout 1 "$bin" "$@" status -o json </dev/null 2>/dev/null |
		grep -o '"service": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/' | sort -u
}

_rollout()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local bin=${COMP_WORDS[0]} verb= i w usage
	local -a data=()
	COMPREPLY=()
	[[ $bin == "~/"* ]] && bin=$HOME/${bin#"~/"}
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--data) data=(--data "${COMP_WORDS[i+1]}"); ((i++)) ;;
		--data=*) data=("$w") ;;
		-*) ;;
		*) verb=$w; break ;;
		esac
	done
	if [[ $prev == --data || $prev == --dir || $prev == --workdir ]]; then
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
	fi
	if [[ -z $verb ]]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--data --help" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$(_rollout_verbs "$bin")" -- "$cur")
		fi
		return
	fi
	if [[ $verb == help ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_rollout_verbs "$bin")" -- "$cur")
		return
	fi
	usage=$(_rollout_usage "$bin" "$verb")
	case $prev in
	-o | --output) mapfile -t COMPREPLY < <(compgen -W "json text" -- "$cur"); return ;;
	--token-file) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	esac
	# An option that takes a value (in the usage, "--flag WORD"): nothing to offer for its value.
	if [[ $prev == -* ]] && grep -Eq -- "(^|[[ ])$prev [A-Za-z]" <<<"$usage"; then
		return
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(grep -Eo -- '(^|[[ ])--?[a-z][a-z-]*' <<<"$usage" |
			sed 's/^[[ ]//' | sort -u) --data --help" -- "$cur")
		return
	fi
	# The positional argument: the first one after the verb that is neither a flag nor a flag's value.
	local npos=0
	for ((i = i + 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == --data ]]; then ((i++)); continue; fi
		if [[ $w == -* ]]; then
			grep -Eq -- "(^|[[ ])$w [A-Za-z]" <<<"$usage" && ((i++))
			continue
		fi
		((npos++))
	done
	((npos > 0)) && [[ $verb != host ]] && return
	case $verb in
	apply | plan)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur" | grep -E '\.ya?ml$'; compgen -d -- "$cur")
		compopt -o filenames 2>/dev/null
		;;
	host)
		((npos == 0)) && mapfile -t COMPREPLY < <(compgen -W "start stop status watch logs run" -- "$cur") ;;
	*)
		if grep -q 'SERVICE' <<<"$usage"; then
			mapfile -t COMPREPLY < <(compgen -W "$(_rollout_services "$bin" "${data[@]}")" -- "$cur")
		fi
		;;
	esac
}

complete -F _rollout rollout
