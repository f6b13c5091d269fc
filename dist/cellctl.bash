# bash completion for cellctl (cellsched): its commands, their words and
# options, as `cellctl --help` and `cellctl help COMMAND` list them.
# Installed as share/bash-completion/completions/cellctl.

_cellctl()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="submit update kill scale get describe endpoints stats watch cordon uncordon drain logs members audit help"
    local global="-s --server --timeout --tls-cert --tls-key --tls-ca --tls-crl --token-file -o --output -h --help"
    COMPREPLY=()

    # The command: the first word that is neither an option nor an
    # option's value.
    local i cmd= cmd_at=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -s|--server|--timeout|--tls-cert|--tls-key|--tls-ca|--tls-crl|-o|--output) ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; cmd_at=$i; break ;;
        esac
    done

    # A value: offer what it can be, or nothing.
    case $prev in
        -o|--output)
            COMPREPLY=($(compgen -W "table json" -- "$cur")); return ;;
        --state)
            local kind=
            for ((i = cmd_at + 1; i < COMP_CWORD; i++)); do
                case ${COMP_WORDS[i]} in machines|jobs|tasks) kind=${COMP_WORDS[i]}; break ;; esac
            done
            case $kind in
                machines) COMPREPLY=($(compgen -W "up draining down" -- "$cur")) ;;
                jobs) COMPREPLY=($(compgen -W "active finished failed killed" -- "$cur")) ;;
                tasks) COMPREPLY=($(compgen -W "pending assigned running finished failed killed lost preempted" -- "$cur")) ;;
            esac
            return ;;
        --tls-cert|--tls-key|--tls-ca|--tls-crl)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -s|--server|--timeout|--interval|--count|--job|--machine|--deadline|--tail|--since|--who|-n|--limit)
            return ;;
        --action)
            COMPREPLY=($(compgen -W "machine.register job.submit job.kill job.scale job.update commit task.status job.note job.surge job.end machine.admin members.add members.remove members.transfer offer.commit machine.down machine.drain_deadline job.gc" -- "$cur")); return ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts=
    case $cmd in
        submit) opts="--dry-run" ;;
        get) opts="--state --job --machine" ;;
        watch) opts="--interval --count --job --ansi" ;;
        drain) opts="--deadline --no-deadline" ;;
        logs) opts="--stderr --tail -f" ;;
        audit) opts="--since --who --action -n --limit" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
        return
    fi

    # The position of the word among the command's arguments (0: the first),
    # options and their values left out.
    local n=0
    for ((i = cmd_at + 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -s|--server|--timeout|--tls-cert|--tls-key|--tls-ca|--tls-crl|--token-file|-o|--output|--state|--job|--machine|--interval|--count|--deadline|--tail|--since|--who|--action|-n|--limit) ((i++)) ;;
            -*) ;;
            *) ((n++)) ;;
        esac
    done
    case $cmd:$n in
        get:0) COMPREPLY=($(compgen -W "machines jobs tasks" -- "$cur")) ;;
        describe:0) COMPREPLY=($(compgen -W "job machine" -- "$cur")) ;;
        members:0) COMPREPLY=($(compgen -W "add remove transfer" -- "$cur")) ;;
        help:0) COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
        submit:0|update:1) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _cellctl cellctl
