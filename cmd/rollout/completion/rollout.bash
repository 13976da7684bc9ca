# bash completion for rollout(8)
#
# Printed by `rollout completion bash`, which fills in _rollout_spec from rollout's own
# commands and flags. Install as /usr/local/share/bash-completion/completions/rollout
# (make install and the port do), or load it into the running shell:
#   source <(rollout completion bash)
# Vhosts, snapshots (proto@N) and slaves come from the configuration (--config, -c or
# ROLLOUT_CONFIG as on the command line), through `rollout completion __complete KIND`.

#@SPEC@

# _rollout_words CMD KIND CONFIG: the vhosts, snapshots or slaves; nothing on any error.
_rollout_words()
{
	if [[ -n $3 ]]; then
		"$1" --config "$3" completion __complete "$2" 2>/dev/null
	else
		"$1" completion __complete "$2" 2>/dev/null
	fi
}

# _rollout_value KIND: completions for CUR, a value of KIND.
_rollout_value()
{
	local IFS=$'\n'
	case $1 in
	vhost | snapshot | slave)
		COMPREPLY=($(compgen -W "$(_rollout_words "$rcmd" "$1s" "$config")" -- "$cur"))
		;;
	file | config)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		;;
	esac
}

_rollout()
{
	local cur=${COMP_WORDS[COMP_CWORD]} rcmd=${COMP_WORDS[0]}
	local cpath='' config='' expect='' dd='' n=0 i w f kind
	local _rollout_subs _rollout_flags _rollout_vflags _rollout_args
	local gflags gvflags flags vflags subs args
	local -a akinds
	COMPREPLY=()
	rcmd=${rcmd/#\~/$HOME}

	_rollout_spec ''
	gflags=$_rollout_flags gvflags=$_rollout_vflags
	flags=$gflags vflags=$gvflags subs=$_rollout_subs args=''

	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ -n $expect ]]; then
			# the value of the flag before, maybe split off by COMP_WORDBREAKS' '='
			[[ $w == = ]] && continue
			[[ $expect == config ]] && config=$w
			expect=''
			continue
		fi
		if [[ -z $dd && $w == -?* ]]; then
			if [[ $w == -- ]]; then
				dd=1
				continue
			fi
			f=${w%%=*}
			case " $vflags " in
			*" $f:"*)
				kind=" $vflags "
				kind=${kind#*" $f:"}
				kind=${kind%% *}
				if [[ $w == *=* ]]; then
					[[ $kind == config ]] && config=${w#*=}
				else
					expect=$kind
				fi
				;;
			esac
			continue
		fi
		if [[ -n $subs && $n -eq 0 && " $subs " == *" $w "* ]]; then
			cpath=${cpath:+$cpath }$w
			_rollout_spec "$cpath"
			flags="$gflags $_rollout_flags" vflags="$gvflags $_rollout_vflags"
			subs=$_rollout_subs args=$_rollout_args
			continue
		fi
		n=$((n + 1))
	done
	config=${config/#\~/$HOME}

	if [[ -n $expect ]]; then
		[[ $cur == = ]] && cur=''
		_rollout_value "$expect"
		return 0
	fi
	if [[ -z $dd && $cur == -* ]]; then
		if [[ $cur == --*=* ]]; then
			f=${cur%%=*}
			case " $vflags " in
			*" $f:"*)
				kind=" $vflags "
				kind=${kind#*" $f:"}
				cur=${cur#*=}
				_rollout_value "${kind%% *}"
				COMPREPLY=("${COMPREPLY[@]/#/$f=}")
				;;
			esac
			return 0
		fi
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
		return 0
	fi
	if [[ -n $subs && $n -eq 0 ]]; then
		COMPREPLY=($(compgen -W "$subs" -- "$cur"))
		return 0
	fi
	akinds=($args)
	if ((n < ${#akinds[@]})); then
		kind=${akinds[n]}
	elif ((${#akinds[@]} > 0)) && [[ ${akinds[${#akinds[@]} - 1]} == *... ]]; then
		kind=${akinds[${#akinds[@]} - 1]}
	else
		return 0
	fi
	_rollout_value "${kind%...}"
	return 0
}

complete -F _rollout rollout
