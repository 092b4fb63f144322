// lua-health runs an Argo CD resource-customization health.lua the way Argo CD's controller does
// (argo-cd util/lua/lua.go: runLua and ExecuteHealthLua), so the project's tests can check the
// script in the same Lua VM (gopher-lua, Lua 5.1) without an Argo CD installation.
//
// Usage: lua-health [-open-libs] <health.lua> < objects.json
//
// stdin holds one Kubernetes object or a JSON array of them; stdout is a JSON array with one
// {"status": ..., "message": ...} per object. A script error or a non-table result is an error
// (exit 1), as it is for Argo CD.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// HealthStatus is Argo CD's health.HealthStatus as the API serializes it.
type HealthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// Argo CD accepts only these (gitops-engine health.HealthStatusCode); any other value becomes
// Unknown with this message.
var validStatuses = map[string]bool{"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true}

const invalidHealthStatus = "Lua returned an invalid health status"

func main() {
	openLibs := flag.Bool("open-libs", false, "open every standard library, as Argo CD does for its built-in scripts and for argocd-cm scripts with resource.customizations.useOpenLibs.<group_kind>: true (default: the argocd-cm default, only base, table and package)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: lua-health [-open-libs] <health.lua> < objects.json")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	script, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var decoded any
	if err := json.Unmarshal(input, &decoded); err != nil {
		fail(fmt.Errorf("stdin is not JSON: %w", err))
	}
	objects, ok := decoded.([]any)
	if !ok {
		objects = []any{decoded}
	}
	results := make([]HealthStatus, 0, len(objects))
	for i, obj := range objects {
		m, ok := obj.(map[string]any)
		if !ok {
			fail(fmt.Errorf("object %d is not a JSON object", i))
		}
		hs, err := executeHealthLua(m, string(script), *openLibs)
		if err != nil {
			fail(fmt.Errorf("object %d (%v): %w", i, describe(m), err))
		}
		results = append(results, hs)
	}
	out, _ := json.Marshal(results)
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "lua-health:", err)
	os.Exit(1)
}

func describe(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	return fmt.Sprintf("%v/%v", meta["namespace"], meta["name"])
}

// executeHealthLua mirrors Argo CD: a fresh state, the same libraries, a one-second budget, the
// object as the global `obj`, and the script's returned table read as a HealthStatus.
func executeHealthLua(obj map[string]any, script string, openLibs bool) (HealthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	// Argo CD also opens a restricted os library (os.time, os.date only); HyperSpector's script
	// does not use it, so it is left out here rather than approximated.
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return HealthStatus{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return HealthStatus{}, err
	}
	ret := l.Get(-1)
	table, ok := ret.(*lua.LTable)
	if !ok {
		return HealthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type().String())
	}
	hs := HealthStatus{Status: luaString(table.RawGetString("status")), Message: luaString(table.RawGetString("message"))}
	if !validStatuses[hs.Status] {
		return HealthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
	}
	return hs, nil
}

func luaString(v lua.LValue) string {
	if v == lua.LNil {
		return ""
	}
	return v.String()
}

// toLua converts decoded JSON the way Argo CD's decodeValue does (numbers are float64 here, as
// after sigs.k8s.io/yaml or encoding/json; unknown types become nil).
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}
