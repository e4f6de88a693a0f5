# Sourced by the stage scripts: checks of the knobs the shell itself uses (the rest go to Python, which checks them).
# int_knob NAME MIN [MAX]: exit 2 naming the knob and its range unless $NAME is a whole number in MIN..MAX.
int_knob() {
    local name=$1 min=$2 max=${3:-} value=${!1}
    if ! [[ "$value" =~ ^[0-9]{1,9}$ ]] || (( 10#$value < min )) || { [ -n "$max" ] && (( 10#$value > max )); }; then
        echo "$(basename "$0"): $name must be an integer >= $min${max:+ and <= $max}, got '$value'" >&2
        exit 2
    fi
}
