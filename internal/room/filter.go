package room

import (
	"math"
	"reflect"

	"github.com/gameserver/gameserver/game"
)

// FiltersMatch reports whether a room whose filtered create options are
// have suits a player asking for want: every key of keys the player gives
// must have the same value (see SameOption). Keys the player leaves out
// match anything.
func FiltersMatch(keys []string, have, want game.Options) bool {
	for _, key := range keys {
		w, ok := want[key]
		if !ok {
			continue // the player does not care
		}
		if !SameOption(have[key], w) {
			return false
		}
	}
	return true
}

// SameOption compares two option values as decoded from msgpack. Numbers
// are equal when their values are, whatever their encodings: one client's
// 200 arrives as a uint8, another's as an int64, and 0.5 as a float32 or a
// float64. Lists and maps compare element by element by the same rule;
// everything else (strings, booleans, nil, binary) must be identical.
func SameOption(a, b any) bool {
	if x, ok := numberOf(a); ok {
		y, ok := numberOf(b)
		return ok && x.equal(y)
	}
	switch av := a.(type) {
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !SameOption(av[i], bv[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, v := range av {
			w, ok := bv[k]
			if !ok || !SameOption(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// number is a decoded number: an integer as a sign and a magnitude, or a
// float.
type number struct {
	isFloat bool
	neg     bool
	mag     uint64
	f       float64
}

func numberOf(v any) (number, bool) {
	switch n := v.(type) {
	case int8:
		return signed(int64(n)), true
	case int16:
		return signed(int64(n)), true
	case int32:
		return signed(int64(n)), true
	case int64:
		return signed(n), true
	case int:
		return signed(int64(n)), true
	case uint8:
		return number{mag: uint64(n)}, true
	case uint16:
		return number{mag: uint64(n)}, true
	case uint32:
		return number{mag: uint64(n)}, true
	case uint64:
		return number{mag: n}, true
	case uint:
		return number{mag: uint64(n)}, true
	case float32:
		return number{isFloat: true, f: float64(n)}, true
	case float64:
		return number{isFloat: true, f: n}, true
	}
	return number{}, false
}

func signed(v int64) number {
	if v < 0 {
		return number{neg: true, mag: uint64(-(v + 1)) + 1}
	}
	return number{mag: uint64(v)}
}

// equal compares by value: an integer equals a float that holds exactly
// it.
func (x number) equal(y number) bool {
	switch {
	case x.isFloat && y.isFloat:
		return x.f == y.f
	case x.isFloat:
		return y.equal(x)
	case y.isFloat:
		f := y.f
		if f != math.Trunc(f) || math.Abs(f) >= 1<<64 {
			return false // a fraction, ±Inf, NaN, or beyond any integer
		}
		if f < 0 {
			return x.neg && x.mag == uint64(-f)
		}
		return !x.neg && x.mag == uint64(f)
	}
	return x.neg == y.neg && x.mag == y.mag
}
