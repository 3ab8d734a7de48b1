#!/bin/sh
# The compose stack's secrets check (service `check-secrets`, which every other service
# waits for). Plain POSIX sh: runs in any image and in the tests.
#
#   check-secrets.sh NAME... [NAME?...]
#
# NAME   required: refused when empty, a placeholder, or shorter than MIN_SECRET_LENGTH.
# NAME?  optional: may be empty (the feature stays off); otherwise the same rules.
#
# A placeholder is any value containing CHANGE_ME / CHANGEME (any case) or one of the
# well-known defaults (admin, password, secret). Every refused variable is named on
# stderr, never its value; exit 1 then, else 0.
set -u

min_length="${MIN_SECRET_LENGTH:-16}"
failed=0
checked=0

refuse() {
    echo "check-secrets: $1 $2" >&2
    failed=1
}

for spec in "$@"; do
    name="${spec%\?}"
    optional=0
    [ "$name" != "$spec" ] && optional=1
    case "$name" in
        '' | [0-9]* | *[!A-Za-z0-9_]*)
            refuse "$spec" "is not a variable name"
            continue
            ;;
    esac
    eval "value=\${$name:-}"
    checked=$((checked + 1))
    if [ -z "$value" ]; then
        [ "$optional" = 1 ] || refuse "$name" "is empty or unset: set it in .env"
        continue
    fi
    lowered=$(printf '%s' "$value" | tr '[:upper:]' '[:lower:]')
    case "$lowered" in
        *change_me* | *changeme* | admin | password | secret)
            refuse "$name" "is still a placeholder: set a real secret in .env"
            continue
            ;;
    esac
    if [ "${#value}" -lt "$min_length" ]; then
        refuse "$name" "is shorter than $min_length characters"
    fi
done

if [ "$failed" != 0 ]; then
    echo "check-secrets: refusing to start the stack (make a secret with: python3 -c \"import secrets; print(secrets.token_hex(24))\")" >&2
    exit 1
fi
echo "check-secrets: $checked variables checked, none refused"
