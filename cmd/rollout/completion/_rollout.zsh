#compdef rollout
#
# zsh completion for rollout(8)
#
# Printed by `rollout completion zsh`, which fills in _rollout_spec from rollout's own
# commands and flags. Install as _rollout in a directory of $fpath, such as
# /usr/local/share/zsh/site-functions (make install and the port do), or load it into the
# running shell after compinit:
#   source <(rollout completion zsh)
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

# _rollout_value KIND: completions for a value of KIND.
_rollout_value()
{
	local -a vals
	case $1 in
	vhost | snapshot | slave)
		vals=(${(f)"$(_rollout_words "$rcmd" "$1s" "$config")"})
		compadd -a vals
		;;
	file | config)
		_files
		;;
	esac
}

_rollout()
{
	local rcmd=${words[1]} cur=${words[CURRENT]}
	local cpath='' config='' expect='' dd='' f kind w
	local _rollout_subs _rollout_flags _rollout_vflags _rollout_args
	local gvflags vflags subs args
	local -a _rollout_sdescs _rollout_fdescs gfdescs fdescs akinds
	integer i n=0
	rcmd=${rcmd/#\~/$HOME}

	_rollout_spec ''
	gvflags=$_rollout_vflags gfdescs=("${_rollout_fdescs[@]}")
	vflags=$gvflags fdescs=("${gfdescs[@]}") subs=$_rollout_subs args=''

	for ((i = 2; i < CURRENT; i++)); do
		w=${words[i]}
		if [[ -n $expect ]]; then
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
			vflags="$gvflags $_rollout_vflags"
			fdescs=("${gfdescs[@]}" "${_rollout_fdescs[@]}")
			subs=$_rollout_subs args=$_rollout_args
			continue
		fi
		n=$((n + 1))
	done
	config=${config/#\~/$HOME}

	if [[ -n $expect ]]; then
		_rollout_value "$expect"
		return
	fi
	if [[ -z $dd && $cur == -* ]]; then
		if [[ $cur == --*=* ]]; then
			f=${cur%%=*}
			case " $vflags " in
			*" $f:"*)
				kind=" $vflags "
				kind=${kind#*" $f:"}
				compset -P '*='
				_rollout_value "${kind%% *}"
				;;
			esac
			return
		fi
		_describe -t options 'option' fdescs
		return
	fi
	if [[ -n $subs && $n -eq 0 ]]; then
		_describe -t commands 'rollout command' _rollout_sdescs
		return
	fi
	akinds=(${=args})
	if ((n < ${#akinds})); then
		kind=${akinds[n + 1]}
	elif ((${#akinds} > 0)) && [[ ${akinds[-1]} == *... ]]; then
		kind=${akinds[-1]}
	else
		return 1
	fi
	_rollout_value "${kind%...}"
}

if [[ ${funcstack[1]} == _rollout ]]; then
	_rollout "$@"
elif (( $+functions[compdef] )); then
	compdef _rollout rollout
fi
