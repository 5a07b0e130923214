package config

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// commentWidth is where the generated comments wrap.
const commentWidth = 96

// DefaultTOML is the whole default configuration as a TOML file, every key preceded by its
// comment (the schema's `comment` tags), that parses back to Default(). `peapod config
// default` prints it; the README's config reference is this text.
func DefaultTOML() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# peapod configuration: `peapod config default` prints this file, every key at its\n")
	b.WriteString("# default. Every key is optional; `peapod config check FILE` reports each problem of a\n")
	b.WriteString("# file with its key and line, as the daemon does at start.\n")
	if err := writeTable(&b, reflect.ValueOf(Default()), nil); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeTable writes v's plain keys, then its sub-tables, each under its header.
func writeTable(b *bytes.Buffer, v reflect.Value, path []string) error {
	t := v.Type()
	var tables []int
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := tomlName(f)
		if name == "" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Struct || ft.Kind() == reflect.Map {
			tables = append(tables, i)
			continue
		}
		b.WriteString("\n")
		writeComment(b, f.Tag.Get("comment"), "")
		fv := v.Field(i)
		if ft.Kind() == reflect.Pointer && fv.IsNil() {
			// Unset has a meaning of its own (the comment says which): show the key, commented.
			line, err := keyValue(name, reflect.Zero(ft.Elem()).Interface())
			if err != nil {
				return err
			}
			b.WriteString("# " + line)
			continue
		}
		line, err := keyValue(name, fv.Interface())
		if err != nil {
			return err
		}
		b.WriteString(line)
	}
	for _, i := range tables {
		f := t.Field(i)
		name := tomlName(f)
		sub := append(append([]string(nil), path...), name)
		fv := v.Field(i)
		b.WriteString("\n")
		if f.Type.Kind() == reflect.Map {
			if err := writeMap(b, f, fv, sub); err != nil {
				return err
			}
			continue
		}
		writeComment(b, f.Tag.Get("comment"), "")
		b.WriteString("[" + strings.Join(quoteKeys(sub), ".") + "]\n")
		if err := writeTable(b, fv, sub); err != nil {
			return err
		}
	}
	return nil
}

// writeMap writes a table of named tables (registries): its comment and an example entry
// (commented out, with each key's comment), then the entries it holds.
func writeMap(b *bytes.Buffer, f reflect.StructField, v reflect.Value, path []string) error {
	writeComment(b, f.Tag.Get("comment"), "")
	elem := f.Type.Elem()
	b.WriteString("#\n# Keys of each [" + strings.Join(quoteKeys(path), ".") + ".\"HOST\"] table:\n")
	for i := 0; i < elem.NumField(); i++ {
		ef := elem.Field(i)
		name := tomlName(ef)
		if name == "" {
			continue
		}
		writeComment(b, ef.Tag.Get("comment"), "#   ")
		line, err := keyValue(name, reflect.Zero(ef.Type).Interface())
		if err != nil {
			return err
		}
		b.WriteString("#   " + line)
	}
	keys := make([]string, 0, v.Len())
	for _, k := range v.MapKeys() {
		keys = append(keys, k.String())
	}
	sort.Strings(keys)
	for _, k := range keys {
		sub := append(append([]string(nil), path...), k)
		b.WriteString("\n[" + strings.Join(quoteKeys(sub), ".") + "]\n")
		if err := writeTable(b, v.MapIndex(reflect.ValueOf(k)), sub); err != nil {
			return err
		}
	}
	return nil
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// keyValue is "name = value\n" as go-toml writes it, but for plain strings, which it
// would write as 'literal strings': those are "basic strings", as people write them.
func keyValue(name string, value any) (string, error) {
	switch v := value.(type) {
	case string:
		if plain(v) {
			return name + ` = "` + v + "\"\n", nil
		}
	case []string:
		quoted := make([]string, len(v))
		ok := true
		for i, s := range v {
			ok = ok && plain(s)
			quoted[i] = `"` + s + `"`
		}
		if ok {
			return name + " = [" + strings.Join(quoted, ", ") + "]\n", nil
		}
	}
	out, err := toml.Marshal(map[string]any{name: value})
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", name, err)
	}
	return string(out), nil
}

// plain says s needs no escape in a TOML basic string.
func plain(s string) bool {
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

// quoteKeys quotes the keys that are not bare TOML keys.
func quoteKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		bare := k != ""
		for _, r := range k {
			bare = bare && (r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}
		if bare {
			out[i] = k
		} else {
			out[i] = fmt.Sprintf("%q", k)
		}
	}
	return out
}

// writeComment writes text as "# " lines wrapped at commentWidth; a newline in text starts
// a new line kept as is (an example).
func writeComment(b *bytes.Buffer, text, indent string) {
	for i, para := range strings.Split(text, "\n") {
		if i > 0 {
			// Lines after the first are examples: indented, never wrapped.
			b.WriteString(indent + "#   " + para + "\n")
			continue
		}
		line := indent + "#"
		for _, word := range strings.Fields(para) {
			if len(line)+1+len(word) > commentWidth && line != indent+"#" {
				b.WriteString(line + "\n")
				line = indent + "#"
			}
			line += " " + word
		}
		b.WriteString(line + "\n")
	}
}
