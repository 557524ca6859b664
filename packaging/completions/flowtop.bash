# bash completion for flowtop(8)                                   -*- shell-script -*-
# The --sort columns and -o formats are checked against flowtop's own lists by the unit tests.

_flowtop_sort_columns="rate orig_rate reply_rate bytes orig_bytes reply_bytes age proto state src dst dport process country flows"
_flowtop_formats="table json csv"
_flowtop_filter_fields="host: port: proto: family: state: proc: user: cc: netns: dir: asn: org:"
_flowtop_filter_fields+=" nat: client: status:"

_flowtop() {
    local cur prev words cword split
    _init_completion -s || return

    case $prev in
        -o | --output)
            COMPREPLY=($(compgen -W "$_flowtop_formats" -- "$cur"))
            return
            ;;
        --sort)
            COMPREPLY=($(compgen -W "$_flowtop_sort_columns" -- "$cur"))
            return
            ;;
        --netns)
            COMPREPLY=($(compgen -W "$(ip netns list 2>/dev/null | awk '{print $1}')" -- "$cur"))
            return
            ;;
        --group)
            COMPREPLY=($(compgen -W "country client table" -- "$cur"))
            return
            ;;
        --geoip-db)
            _filedir mmdb
            return
            ;;
        --leases)
            _filedir
            return
            ;;
        --lan)
            return
            ;;
        --log | --alert-exec)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        --config)
            _filedir
            return
            ;;
        --conf-dir)
            _filedir -d
            return
            ;;
        --filter | --delete-matching)
            COMPREPLY=($(compgen -W "$_flowtop_filter_fields and or not" -- "$cur"))
            compopt -o nospace 2>/dev/null
            return
            ;;
        -t | --interval | -c | --count | --full-sweep)
            return
            ;;
    esac
    $split && return

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W '-4 -6 -T -U -D -I -S -n -G -s -b -t -c -o -v -h
            --ipv4 --ipv6 --tcp --udp --dccp --icmp --sctp --no-dns --no-geoip --show-src
            --bits --interval --count --output --batch --filter --sort --geoip-db --netns
            --all-netns --full-sweep --no-proc --conf-dir --group --lan --leases --config --no-config
            --daemon --prometheus --ipfix --ipfix-active-timeout --log --log-rotate
            --detect --no-detect --allow-country --alerts-only --alert-exec --alert-exec-shell
            --delete-matching --yes
            --version --help' -- "$cur"))
        [[ ${COMPREPLY-} == *= ]] && compopt -o nospace
    fi
} &&
    complete -F _flowtop flowtop

# ex: filetype=sh
