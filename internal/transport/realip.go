package transport

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses Config.TrustedProxies: IP addresses
// ("10.0.0.7", "::1") and CIDR prefixes ("10.0.0.0/8", "fd00::/8").
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, unmapPrefix(p.Masked()))
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR prefix such as 10.0.0.0/8", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// its IPv4 form, as addresses are compared unmapped.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// maxForwardHops bounds the X-Forwarded-For entries looked at: past that
// many trusted proxies in a row, the last one stands for the client.
const maxForwardHops = 32

// clientAddr is the address the limits apply to and that the server
// reports for a connection whose TCP peer is peer and whose request
// carried the X-Forwarded-For header values xff, in order.
//
// The header is believed only as far as trusted proxies vouch for it: a
// peer outside the trusted set is the client, whatever it sent. Otherwise
// the entries are read from the last (added by the peer) towards the
// first, and the first address outside the trusted set is the client: an
// entry further left could have been written by that client. An entry
// that is not an address (or more than maxForwardHops trusted ones) ends
// the walk at the last trusted proxy seen, so a malformed header counts
// against the proxy that passed it on, never against someone else. The
// port of a forwarded client is unknown: 0.
func clientAddr(trusted []netip.Prefix, peer netip.AddrPort, xff []string) netip.AddrPort {
	last := peer.Addr().Unmap()
	if !isTrusted(trusted, last) {
		return peer
	}
	hops := 0
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		if len(entries) == 1 && strings.Trim(entries[0], " \t") == "" {
			continue // an empty header line
		}
		for j := len(entries) - 1; j >= 0; j-- {
			a, ok := forwardedAddr(strings.Trim(entries[j], " \t"))
			if !ok || hops == maxForwardHops {
				return netip.AddrPortFrom(last, 0)
			}
			hops++
			if !isTrusted(trusted, a) {
				return netip.AddrPortFrom(a, 0)
			}
			last = a
		}
	}
	if last == peer.Addr().Unmap() {
		return peer
	}
	return netip.AddrPortFrom(last, 0)
}

// forwardedAddr parses one X-Forwarded-For entry: an address, or an
// address with a port ("203.0.113.7:4711", "[2001:db8::1]:4711"), as some
// proxies write it.
func forwardedAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if !a.IsValid() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func isTrusted(trusted []netip.Prefix, a netip.Addr) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
