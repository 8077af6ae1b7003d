// Command harness renders confd template resources as confd does, for the differential
// tests of `reconfig migrate --from confd` (tests/it/migrate_confd.rs). It needs only Go's
// standard library: confd's template functions (resource/template/template_funcs.go) and
// its key store (kelseyhightower/memkv) are written out here with confd's behaviour, over
// a store filled from a flat JSON snapshot the way confd's setVars fills it.
//
// Usage: harness JOBS.json, where JOBS.json is a list of
// {"id", "template", "prefix", "keys", "data"}; it prints a JSON list of
// {"id", "ok", "output" (base64), "error"}.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

type job struct {
	ID       string   `json:"id"`
	Template string   `json:"template"`
	Prefix   string   `json:"prefix"`
	Keys     []string `json:"keys"`
	Data     string   `json:"data"`
}

type result struct {
	ID     string `json:"id"`
	OK     bool   `json:"ok"`
	Output string `json:"output"`
	Error  string `json:"error"`
}

// KVPair and KVPairs are memkv's.
type KVPair struct {
	Key   string
	Value string
}

type KVPairs []KVPair

func (ks KVPairs) Len() int           { return len(ks) }
func (ks KVPairs) Less(i, j int) bool { return ks[i].Key < ks[j].Key }
func (ks KVPairs) Swap(i, j int)      { ks[i], ks[j] = ks[j], ks[i] }

type keyError struct {
	Key string
	Err error
}

func (e *keyError) Error() string { return e.Err.Error() + ": " + e.Key }

var errNotExist = errors.New("key does not exist")

type store struct{ m map[string]KVPair }

func (s store) Exists(key string) bool {
	_, err := s.Get(key)
	return err == nil
}

func (s store) Get(key string) (KVPair, error) {
	kv, ok := s.m[key]
	if !ok {
		return kv, &keyError{key, errNotExist}
	}
	return kv, nil
}

func (s store) GetValue(key string, v ...string) (string, error) {
	kv, err := s.Get(key)
	if err != nil {
		if len(v) > 0 {
			return v[0], nil
		}
		return "", err
	}
	return kv.Value, nil
}

func (s store) GetAll(pattern string) (KVPairs, error) {
	ks := make(KVPairs, 0)
	for _, kv := range s.m {
		m, err := path.Match(pattern, kv.Key)
		if err != nil {
			return nil, err
		}
		if m {
			ks = append(ks, kv)
		}
	}
	if len(ks) == 0 {
		return ks, nil
	}
	sort.Sort(ks)
	return ks, nil
}

func (s store) GetAllValues(pattern string) ([]string, error) {
	vs := make([]string, 0)
	ks, err := s.GetAll(pattern)
	if err != nil {
		return vs, err
	}
	if len(ks) == 0 {
		return vs, nil
	}
	for _, kv := range ks {
		vs = append(vs, kv.Value)
	}
	sort.Strings(vs)
	return vs, nil
}

func (s store) List(filePath string) []string {
	vs := make([]string, 0)
	m := make(map[string]bool)
	prefix := pathToTerms(filePath)
	for _, kv := range s.m {
		if kv.Key == filePath {
			m[path.Base(kv.Key)] = true
			continue
		}
		target := pathToTerms(path.Dir(kv.Key))
		if samePrefixTerms(prefix, target) {
			m[strings.Split(stripKey(kv.Key, filePath), "/")[0]] = true
		}
	}
	for k := range m {
		vs = append(vs, k)
	}
	sort.Strings(vs)
	return vs
}

func (s store) ListDir(filePath string) []string {
	vs := make([]string, 0)
	m := make(map[string]bool)
	prefix := pathToTerms(filePath)
	for _, kv := range s.m {
		if strings.HasPrefix(kv.Key, filePath) {
			items := pathToTerms(path.Dir(kv.Key))
			if samePrefixTerms(prefix, items) && (len(items)-len(prefix) >= 1) {
				m[items[len(prefix):][0]] = true
			}
		}
	}
	for k := range m {
		vs = append(vs, k)
	}
	sort.Strings(vs)
	return vs
}

func stripKey(key, prefix string) string {
	return strings.TrimPrefix(strings.TrimPrefix(key, prefix), "/")
}

func pathToTerms(filePath string) []string {
	return strings.Split(path.Clean(filePath), "/")
}

func samePrefixTerms(prefix, test []string) bool {
	if len(test) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if prefix[i] != test[i] {
			return false
		}
	}
	return true
}

// confd's template_funcs.go.

func seq(first, last int) []int {
	var arr []int
	for i := first; i <= last; i++ {
		arr = append(arr, i)
	}
	return arr
}

type byLengthKV []KVPair

func (s byLengthKV) Len() int           { return len(s) }
func (s byLengthKV) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s byLengthKV) Less(i, j int) bool { return len(s[i].Key) < len(s[j].Key) }

func sortKVByLength(values []KVPair) []KVPair {
	sort.Sort(byLengthKV(values))
	return values
}

type byLength []string

func (s byLength) Len() int           { return len(s) }
func (s byLength) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s byLength) Less(i, j int) bool { return len(s[i]) < len(s[j]) }

func sortByLength(values []string) []string {
	sort.Sort(byLength(values))
	return values
}

func reverse(values interface{}) interface{} {
	switch values.(type) {
	case []string:
		v := values.([]string)
		for left, right := 0, len(v)-1; left < right; left, right = left+1, right-1 {
			v[left], v[right] = v[right], v[left]
		}
	case []KVPair:
		v := values.([]KVPair)
		for left, right := 0, len(v)-1; left < right; left, right = left+1, right-1 {
			v[left], v[right] = v[right], v[left]
		}
	}
	return values
}

func getenv(key string, v ...string) string {
	defaultValue := ""
	if len(v) > 0 {
		defaultValue = v[0]
	}
	value := os.Getenv(key)
	if value == "" {
		return defaultValue
	}
	return value
}

func createMap(values ...interface{}) (map[string]interface{}, error) {
	if len(values)%2 != 0 {
		return nil, errors.New("invalid map call")
	}
	dict := make(map[string]interface{}, len(values)/2)
	for i := 0; i < len(values); i += 2 {
		key, ok := values[i].(string)
		if !ok {
			return nil, errors.New("map keys must be strings")
		}
		dict[key] = values[i+1]
	}
	return dict, nil
}

func unmarshalJSONObject(data string) (map[string]interface{}, error) {
	var ret map[string]interface{}
	err := json.Unmarshal([]byte(data), &ret)
	return ret, err
}

func unmarshalJSONArray(data string) ([]interface{}, error) {
	var ret []interface{}
	err := json.Unmarshal([]byte(data), &ret)
	return ret, err
}

func lookupIP(data string) []string {
	ips, err := net.LookupIP(data)
	if err != nil {
		return nil
	}
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	sort.Strings(s)
	return s
}

func funcMap(s store) template.FuncMap {
	return template.FuncMap{
		"base":           path.Base,
		"split":          strings.Split,
		"json":           unmarshalJSONObject,
		"jsonArray":      unmarshalJSONArray,
		"dir":            path.Dir,
		"map":            createMap,
		"getenv":         getenv,
		"join":           strings.Join,
		"datetime":       time.Now,
		"toUpper":        strings.ToUpper,
		"toLower":        strings.ToLower,
		"contains":       strings.Contains,
		"replace":        strings.Replace,
		"trimSuffix":     strings.TrimSuffix,
		"lookupIP":       lookupIP,
		"lookupIPV4":     lookupIP,
		"lookupIPV6":     lookupIP,
		"lookupSRV":      func(service, proto, name string) []*net.SRV { return nil },
		"fileExists":     func(p string) bool { _, err := os.Stat(p); return !os.IsNotExist(err) },
		"base64Encode":   func(d string) string { return base64.StdEncoding.EncodeToString([]byte(d)) },
		"base64Decode":   func(d string) (string, error) { b, err := base64.StdEncoding.DecodeString(d); return string(b), err },
		"parseBool":      strconv.ParseBool,
		"reverse":        reverse,
		"sortByLength":   sortByLength,
		"sortKVByLength": sortKVByLength,
		"add":            func(a, b int) int { return a + b },
		"sub":            func(a, b int) int { return a - b },
		"div":            func(a, b int) int { return a / b },
		"mod":            func(a, b int) int { return a % b },
		"mul":            func(a, b int) int { return a * b },
		"seq":            seq,
		"atoi":           strconv.Atoi,
		"exists":         s.Exists,
		"ls":             s.List,
		"lsdir":          s.ListDir,
		"get":            s.Get,
		"gets":           s.GetAll,
		"getv":           s.GetValue,
		"getvs":          s.GetAllValues,
	}
}

// render fills the store as confd's setVars does and executes the template as
// createStageFile does.
func render(j job) result {
	r := result{ID: j.ID}
	raw, err := os.ReadFile(j.Data)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	var flat map[string]string
	if err := json.Unmarshal(raw, &flat); err != nil {
		r.Error = err.Error()
		return r
	}
	prefix := j.Prefix
	if !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	s := store{m: map[string]KVPair{}}
	// etcdv3's GetValues: every key equal to prefix+key or below it.
	names := make([]string, 0, len(flat))
	for k := range flat {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, want := range j.Keys {
		origin := path.Join(prefix, want)
		fixed := origin
		if !strings.HasSuffix(fixed, "/") {
			fixed += "/"
		}
		for _, k := range names {
			if k == origin || strings.HasPrefix(k, fixed) {
				key := path.Join("/", strings.TrimPrefix(k, prefix))
				s.m[key] = KVPair{key, flat[k]}
			}
		}
	}
	tmpl, err := template.New(filepath.Base(j.Template)).Funcs(funcMap(s)).ParseFiles(j.Template)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, nil); err != nil {
		r.Error = err.Error()
		return r
	}
	r.OK = true
	r.Output = base64.StdEncoding.EncodeToString(out.Bytes())
	return r
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var jobs []job
	if err := json.Unmarshal(raw, &jobs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	results := make([]result, 0, len(jobs))
	for _, j := range jobs {
		results = append(results, render(j))
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
