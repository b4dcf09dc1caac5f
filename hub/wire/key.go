package wire

// API keys are random UUIDs; the stored hash is of the canonical form, 36
// characters in lower case (SPEC §3).

const canonicalKeyLen = 36

// ValidKeyA reports whether s has the 8-4-4-4-12 hexadecimal form, in any
// case: the only form protocol A accepts (SPEC §3, §4.1 "Invalid apiKey
// format"). Version and variant bits are not checked.
func ValidKeyA(s string) bool {
	if len(s) != canonicalKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if isHyphenAt(i) {
			if s[i] != '-' {
				return false
			}
		} else if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// CanonicalKey returns the canonical form of an API key: s lowered when it
// has the 8-4-4-4-12 form; with allowHex32 (protocol B and SSE) also the
// 32 hex digits without hyphens, which come back with the hyphens put in.
// ok is false when s is neither.
func CanonicalKey(s string, allowHex32 bool) (key string, ok bool) {
	switch {
	case ValidKeyA(s):
		if !hasUpper(s) {
			return s, true
		}
		var b [canonicalKeyLen]byte
		for i := 0; i < len(s); i++ {
			b[i] = lower(s[i])
		}
		return string(b[:]), true
	case allowHex32 && len(s) == 32:
		var b [canonicalKeyLen]byte
		j := 0
		for i := range b {
			if isHyphenAt(i) {
				b[i] = '-'
				continue
			}
			if !isHex(s[j]) {
				return "", false
			}
			b[i] = lower(s[j])
			j++
		}
		return string(b[:]), true
	}
	return "", false
}

func isHyphenAt(i int) bool { return i == 8 || i == 13 || i == 18 || i == 23 }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
