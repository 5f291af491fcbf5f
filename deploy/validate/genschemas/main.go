// Command genschemas writes the JSON schemas deploy/validate checks the rendered
// Kubernetes manifests against, in the layout kubeconform reads
// (<out>/v<version>-standalone-strict/<kind>-<group>-<version>.json).
//
// The source is the Kubernetes API's OpenAPI v2 document, api/openapi-spec/swagger.json of
// the module k8s.io/kubernetes at -k8s (fetched into the Go module cache by
// `go mod download`, the Go module proxy being the only registry reached; pass -swagger to
// read a local copy instead). It does what openapi2jsonschema --kubernetes --stand-alone
// --strict does for kubeconform's published schemas: every object that lists properties
// allows no others (strict), every definition a kind needs is copied into the kind's own
// file (stand-alone: no reference leaves the file), int-or-string and quantities accept a
// string or a number, optional values may be null, and apiVersion and kind must be the
// kind's own. Only the kinds in -kinds are written (those the overlays render): add one
// here when a manifest starts using it, and run `make deploy-schemas`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// defaultKinds are group/version/Kind ("" group: core).
const defaultKinds = "/v1/ConfigMap,/v1/Namespace,/v1/Secret,/v1/Service,/v1/ServiceAccount," +
	"apps/v1/Deployment,apps/v1/StatefulSet,batch/v1/Job,autoscaling/v2/HorizontalPodAutoscaler," +
	"policy/v1/PodDisruptionBudget,networking.k8s.io/v1/NetworkPolicy,networking.k8s.io/v1/Ingress," +
	"rbac.authorization.k8s.io/v1/Role,rbac.authorization.k8s.io/v1/RoleBinding"

func main() {
	version := flag.String("k8s", "1.34.4", "Kubernetes version (the k8s.io/kubernetes module version without the v)")
	swagger := flag.String("swagger", "", "path of swagger.json (default: from the k8s.io/kubernetes module)")
	out := flag.String("out", "schemas", "output folder")
	kinds := flag.String("kinds", defaultKinds, "comma-separated group/version/Kind list")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("genschemas: ")

	path := *swagger
	if path == "" {
		var err error
		if path, err = moduleSwagger(*version); err != nil {
			log.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		log.Fatalf("%s: %v", path, err)
	}
	dir := filepath.Join(*out, "v"+*version+"-standalone-strict")
	if err := os.RemoveAll(dir); err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, gvk := range strings.Split(*kinds, ",") {
		parts := strings.Split(gvk, "/")
		if len(parts) != 3 {
			log.Fatalf("kind %q: want group/version/Kind", gvk)
		}
		group, ver, kind := parts[0], parts[1], parts[2]
		name, err := findKind(doc.Definitions, group, ver, kind)
		if err != nil {
			log.Fatal(err)
		}
		schema := standalone(doc.Definitions, name, group, ver, kind)
		b, err := json.MarshalIndent(schema, "", " ")
		if err != nil {
			log.Fatal(err)
		}
		apiVersion := ver
		file := strings.ToLower(kind) + "-" + ver + ".json"
		if group != "" {
			apiVersion = group + "/" + ver
			file = strings.ToLower(kind) + "-" + strings.ToLower(strings.Split(group, ".")[0]) + "-" + ver + ".json"
		}
		if err := os.WriteFile(filepath.Join(dir, file), append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s -> %s\n", apiVersion, kind, filepath.Join(dir, file))
	}
}

// moduleSwagger downloads k8s.io/kubernetes@v<version> into the module cache (about
// 18 MB) and returns the path of its swagger.json.
func moduleSwagger(version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@v"+version)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download k8s.io/kubernetes@v%s: %w", version, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	if m.Error != "" {
		return "", fmt.Errorf("go mod download: %s", m.Error)
	}
	return filepath.Join(m.Dir, "api", "openapi-spec", "swagger.json"), nil
}

func findKind(defs map[string]map[string]any, group, version, kind string) (string, error) {
	var found []string
	for name, d := range defs {
		gvks, _ := d["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m, _ := g.(map[string]any)
			if m["group"] == group && m["version"] == version && m["kind"] == kind {
				found = append(found, name)
			}
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%s/%s %s: %d definitions in the OpenAPI document (%v)", group, version, kind, len(found), found)
	}
	return found[0], nil
}

const (
	refPrefix = "#/definitions/"
	quantity  = "io.k8s.apimachinery.pkg.api.resource.Quantity"
)

// standalone returns the schema of definition name with every definition it reaches
// copied under "definitions", converted for strict validation.
func standalone(defs map[string]map[string]any, name, group, version, kind string) map[string]any {
	needed := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			if ref, ok := t["$ref"].(string); ok {
				n := strings.TrimPrefix(ref, refPrefix)
				if !needed[n] {
					needed[n] = true
					walk(defs[n])
				}
			}
			for _, c := range t {
				walk(c)
			}
		case []any:
			for _, c := range t {
				walk(c)
			}
		}
	}
	walk(defs[name])
	delete(needed, name)

	root := convert(defs[name], true).(map[string]any)
	apiVersion := version
	if group != "" {
		apiVersion = group + "/" + version
	}
	props := root["properties"].(map[string]any)
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion}, "description": "must be " + apiVersion}
	props["kind"] = map[string]any{"type": "string", "enum": []any{kind}, "description": "must be " + kind}
	req, _ := root["required"].([]any)
	for _, r := range []string{"apiVersion", "kind"} {
		if !slices.Contains(req, any(r)) {
			req = append(req, r)
		}
	}
	root["required"] = req
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	names := make([]string, 0, len(needed))
	for n := range needed {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 0 {
		sub := map[string]any{}
		for _, n := range names {
			if n == quantity {
				// "2", 2 and 0.5 are all quantities (resources, emptyDir sizeLimit)
				sub[n] = map[string]any{"oneOf": []any{map[string]any{"type": []any{"string", "null"}}, map[string]any{"type": "number"}}}
				continue
			}
			sub[n] = convert(defs[n], false)
		}
		root["definitions"] = sub
	}
	return root
}

// convert copies one schema node: objects with properties become closed, int-or-string and
// quantities take a string or a number, optional scalars may be null, and the OpenAPI
// extensions and formats (annotations only) are dropped.
func convert(v any, top bool) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, c := range t {
			out[i] = convert(c, false)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		if t["format"] == "int-or-string" {
			out["oneOf"] = []any{map[string]any{"type": []any{"string", "null"}}, map[string]any{"type": "integer"}}
			copyDesc(out, t)
			return out
		}
		for k, c := range t {
			switch {
			case strings.HasPrefix(k, "x-"), k == "format":
			case k == "properties":
				props := map[string]any{}
				for pk, pv := range c.(map[string]any) {
					props[pk] = convert(pv, false)
				}
				out[k] = props
			case k == "$ref", k == "description", k == "required", k == "enum":
				out[k] = c
			default:
				out[k] = convert(c, false)
			}
		}
		if _, ok := t["properties"]; ok {
			if _, has := t["additionalProperties"]; !has {
				out["additionalProperties"] = false
			}
		}
		if typ, ok := out["type"].(string); ok && !top {
			out["type"] = []any{typ, "null"}
		}
		return out
	default:
		return v
	}
}

func copyDesc(out, in map[string]any) {
	if d, ok := in["description"]; ok {
		out["description"] = d
	}
}
