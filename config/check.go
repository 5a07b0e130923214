package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	// Key is the TOML path ("runtime.pids_limit"); empty for a syntax error.
	Key string
	// Line is where the key (or the syntax error) is, from 1; 0 when the file does not
	// have the key (a value from a flag or a default).
	Line int
	Msg  string
}

// In formats the problem as found in file path: "path:line: key "k": msg".
func (p Problem) In(path string) string {
	var b strings.Builder
	if path != "" {
		b.WriteString(path)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		fmt.Fprintf(&b, "key %q: ", p.Key)
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Check decodes raw over the defaults and returns the result with every problem found:
// a syntax error (alone: nothing after it can be read), else every unknown key and every
// value of the wrong type, else every impossible value. The config is usable only when
// there are no problems.
func Check(raw []byte) (Config, []Problem) {
	cfg := Default()
	var doc map[string]any
	if err := toml.Unmarshal(raw, &doc); err != nil {
		return cfg, []Problem{decodeProblem(err)}
	}
	lines, err := keyLines(raw)
	if err != nil {
		return cfg, []Problem{{Msg: err.Error()}}
	}
	// Unknown keys and values of the wrong type are reported and dropped; the rest is
	// decoded so that its values are checked too.
	problems := checkValue(reflect.TypeOf(cfg), doc, nil, lines)
	clean, err := toml.Marshal(doc)
	if err == nil {
		err = toml.NewDecoder(bytes.NewReader(clean)).DisallowUnknownFields().Decode(&cfg)
	}
	if err != nil {
		// Not expected: what the walk above does not model (an integer out of range, say).
		problems = append(problems, decodeProblem(err))
	}
	if cfg.Registries == nil {
		cfg.Registries = map[string]Registry{}
	}
	values := cfg.problems()
	for i := range values {
		values[i].Line = lines[values[i].Key]
	}
	problems = append(problems, values...)
	sortByLine(problems)
	return cfg, problems
}
func sortByLine(problems []Problem) {
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
}

func decodeProblem(err error) Problem {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return Problem{Key: strings.Join(de.Key(), "."), Line: row, Msg: de.Error()}
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		row, _ := strict.Errors[0].Position()
		return Problem{Key: strings.Join(strict.Errors[0].Key(), "."), Line: row, Msg: "unknown key"}
	}
	return Problem{Msg: err.Error()}
}

// keyLines maps every key of the document (dotted path, table headers included) to the line
// it is on.
func keyLines(raw []byte) (map[string]int, error) {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(raw)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table, _ = keyPath(&p, e, nil, lines)
		case unstable.KeyValue:
			recordKeyValue(&p, e, table, lines)
		}
	}
	if err := p.Error(); err != nil {
		return nil, fmt.Errorf("syntax: %w", err)
	}
	return lines, nil
}

// keyPath is prefix plus e's (dotted) key; each prefix of it is recorded at the key's line.
func keyPath(p *unstable.Parser, e *unstable.Node, prefix []string, lines map[string]int) ([]string, int) {
	path := append([]string(nil), prefix...)
	line := 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		path = append(path, string(k.Data))
		if k.Raw.Length > 0 {
			line = p.Shape(k.Raw).Start.Line
		}
		if _, ok := lines[strings.Join(path, ".")]; !ok {
			lines[strings.Join(path, ".")] = line
		}
	}
	return path, line
}

func recordKeyValue(p *unstable.Parser, e *unstable.Node, table []string, lines map[string]int) {
	path, _ := keyPath(p, e, table, lines)
	if v := e.Value(); v != nil && v.Kind == unstable.InlineTable {
		it := v.Children()
		for it.Next() {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				recordKeyValue(p, kv, path, lines)
			}
		}
	}
}

// checkValue compares a decoded TOML value with the schema type t: unknown keys and wrong
// types, each with its key and line.
func checkValue(t reflect.Type, v any, path []string, lines map[string]int) []Problem {
	key := strings.Join(path, ".")
	wrong := func(want string) []Problem {
		return []Problem{{Key: key, Line: lines[key], Msg: fmt.Sprintf("must be %s, not %s", want, tomlType(v))}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return checkValue(t.Elem(), v, path, lines)
	case reflect.Struct:
		table, ok := v.(map[string]any)
		if !ok {
			return wrong("a table")
		}
		fields := map[string]reflect.Type{}
		for _, f := range reflect.VisibleFields(t) {
			if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		var out []Problem
		for _, k := range sortedKeys(table) {
			sub := append(append([]string(nil), path...), k)
			ft, ok := fields[k]
			if !ok {
				sk := strings.Join(sub, ".")
				out = append(out, Problem{Key: sk, Line: lines[sk], Msg: "unknown key"})
				delete(table, k)
				continue
			}
			out = append(out, dropBad(table, k, strings.Join(sub, "."), checkValue(ft, table[k], sub, lines))...)
		}
		return out
	case reflect.Map:
		table, ok := v.(map[string]any)
		if !ok {
			return wrong("a table")
		}
		var out []Problem
		for _, k := range sortedKeys(table) {
			sub := append(append([]string(nil), path...), k)
			out = append(out, dropBad(table, k, strings.Join(sub, "."), checkValue(t.Elem(), table[k], sub, lines))...)
		}
		return out
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return wrong("an array of " + kindName(t.Elem()))
		}
		for _, el := range list {
			if p := checkValue(t.Elem(), el, path, lines); len(p) > 0 {
				return wrong("an array of " + kindName(t.Elem()))
			}
		}
		return nil
	case reflect.String:
		if _, ok := v.(string); !ok {
			return wrong("a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return wrong("true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, ok := v.(int64); !ok {
			return wrong("an integer")
		}
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case float64, int64:
		default:
			return wrong("a number")
		}
	}
	return nil
}

// dropBad removes table[k] (at key path) when a problem is about it itself, a wrong type:
// what is left decodes. Problems deeper down were dropped deeper down.
func dropBad(table map[string]any, k, path string, problems []Problem) []Problem {
	for _, p := range problems {
		if p.Key == path {
			delete(table, k)
			break
		}
	}
	return problems
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "booleans"
	case reflect.Struct, reflect.Map:
		return "tables"
	}
	return "integers"
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
