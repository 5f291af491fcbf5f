package validate

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/licensing/licensing/internal/clientip"
	"github.com/yannh/kubeconform/pkg/resource"
	"github.com/yannh/kubeconform/pkg/validator"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// k8sVersion is the Kubernetes version the schemas were generated for (the generate
// directive in doc.go).
const k8sVersion = "1.34.4"

const regionLabel = "licensing.example.com/region"

var awsRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)

var (
	root     = filepath.Join("..", "..")
	k8sDir   = filepath.Join(root, "deploy", "k8s")
	overlays = filepath.Join(k8sDir, "overlays")
)

// obj is one rendered object.
type obj struct {
	Kind, Name string
	YAML       []byte
	M          map[string]any
}

var renderCache sync.Map // dir -> []obj

// render builds the kustomization in dir as `kubectl kustomize` does.
func render(t *testing.T, dir string) []obj {
	t.Helper()
	if v, ok := renderCache.Load(dir); ok {
		return v.([]obj)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	objs := toObjs(t, m)
	renderCache.Store(dir, objs)
	return objs
}

func toObjs(t *testing.T, m resmap.ResMap) []obj {
	t.Helper()
	var out []obj
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		mm, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, obj{Kind: r.GetKind(), Name: r.GetName(), YAML: b, M: mm})
	}
	return out
}

// kustomizations lists every folder under deploy/k8s with a kustomization.yaml that can be
// built on its own (not a Component).
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(k8sDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() != "kustomization.yaml" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("kind: Component")) {
			dirs = append(dirs, filepath.Dir(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 5 {
		t.Fatalf("found only %d kustomizations under %s", len(dirs), k8sDir)
	}
	return dirs
}

// regionOverlays are the deployable overlays: central and every edge region.
func regionOverlays(t *testing.T) (central string, edges []string) {
	t.Helper()
	central = filepath.Join(overlays, "central")
	ents, err := os.ReadDir(filepath.Join(overlays, "regions"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			edges = append(edges, filepath.Join(overlays, "regions", e.Name()))
		}
	}
	if len(edges) < 2 {
		t.Fatalf("want at least two edge regions under overlays/regions, have %v", edges)
	}
	return central, edges
}

var (
	validatorOnce sync.Once
	sharedV       validator.Validator
	validatorErr  error
)

// newValidator returns the one validator of the package (safe for concurrent use; it
// compiles each schema once).
func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	validatorOnce.Do(func() {
		var abs string
		if abs, validatorErr = filepath.Abs("schemas"); validatorErr != nil {
			return
		}
		sharedV, validatorErr = validator.New([]string{abs + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"},
			validator.Opts{Strict: true, KubernetesVersion: k8sVersion})
	})
	if validatorErr != nil {
		t.Fatal(validatorErr)
	}
	return sharedV
}

func validate(v validator.Validator, o obj) error {
	res := v.ValidateResource(resource.Resource{Path: o.Kind + "/" + o.Name, Bytes: o.YAML})
	if res.Status == validator.Valid {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: status %d: %v", o.Kind, o.Name, res.Status, res.Err)
	for _, e := range res.ValidationErrors {
		fmt.Fprintf(&b, "\n\t%s: %s", e.Path, e.Msg)
	}
	return fmt.Errorf("%s", b.String())
}

// TestKustomizeRendersAndValidates: every kustomization renders, and every object is valid
// for Kubernetes 1.34 in kubeconform's strict mode (no unknown fields, no duplicate keys).
func TestKustomizeRendersAndValidates(t *testing.T) {
	v := newValidator(t)
	for _, dir := range kustomizations(t) {
		rel, _ := filepath.Rel(k8sDir, dir)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			objs := render(t, dir)
			if len(objs) == 0 {
				t.Fatal("renders nothing")
			}
			for _, o := range objs {
				if err := validate(v, o); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestValidatorRejects: the schemas and the strict mode catch what they are there for.
func TestValidatorRejects(t *testing.T) {
	v := newValidator(t)
	var dep obj
	for _, o := range render(t, filepath.Join(overlays, "central")) {
		if o.Kind == "Deployment" && o.Name == "writer" {
			dep = o
		}
	}
	if dep.YAML == nil {
		t.Fatal("central overlay renders no writer Deployment")
	}
	if err := validate(v, dep); err != nil {
		t.Fatalf("the unchanged writer Deployment: %v", err)
	}
	for name, edit := range map[string]func(string) string{
		"unknown field": func(s string) string {
			return strings.Replace(s, "imagePullPolicy:", "imagePullPolicyy:", 1)
		},
		"wrong type": func(s string) string {
			return strings.Replace(s, "replicas: 2", "replicas: two", 1)
		},
		"wrong kind for the apiVersion": func(s string) string {
			return strings.Replace(s, "kind: Deployment", "kind: Deploymnet", 1)
		},
		"duplicate key": func(s string) string {
			return strings.Replace(s, "replicas: 2", "replicas: 2\n  replicas: 3", 1)
		},
	} {
		changed := edit(string(dep.YAML))
		if changed == string(dep.YAML) {
			t.Fatalf("%s: the edit did not apply", name)
		}
		if err := validate(v, obj{Kind: "Deployment", Name: name, YAML: []byte(changed)}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func find(objs []obj, kind, name string) (obj, bool) {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return obj{}, false
}

func must(t *testing.T, objs []obj, kind, name string) obj {
	t.Helper()
	o, ok := find(objs, kind, name)
	if !ok {
		t.Fatalf("no %s %s", kind, name)
	}
	return o
}

// get walks a path of map keys and slice indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

// configMapData returns the data of the generated ConfigMap whose name starts with prefix-
// (the generator appends a content hash) and the ConfigMap's full name.
func configMapData(t *testing.T, objs []obj, prefix string) (map[string]string, string) {
	t.Helper()
	for _, o := range objs {
		if o.Kind == "ConfigMap" && strings.HasPrefix(o.Name, prefix+"-") {
			out := map[string]string{}
			for k, v := range get(o.M, "data").(map[string]any) {
				out[k] = v.(string)
			}
			return out, o.Name
		}
	}
	t.Fatalf("no ConfigMap %s-<hash>", prefix)
	return nil, ""
}

// TestRegionLabelsAndSettings: each region's pods carry the region label, which is the
// region the binaries report (WRITER_REGION / EDGE_REGION), so per-region metrics and
// alerts separate regions; no two regions share a name.
func TestRegionLabelsAndSettings(t *testing.T) {
	central, edges := regionOverlays(t)
	seen := map[string]string{}
	check := func(t *testing.T, dir, cm, envVar string, workloads ...string) {
		objs := render(t, dir)
		data, _ := configMapData(t, objs, cm)
		region := data[envVar]
		if region == "" {
			t.Fatalf("%s: %s is not set", cm, envVar)
		}
		if other, dup := seen[region]; dup {
			t.Errorf("region %q used by %s and %s", region, other, dir)
		}
		seen[region] = dir
		for _, w := range workloads {
			kind, name, _ := strings.Cut(w, "/")
			o := must(t, objs, kind, name)
			if got := str(o.M, "spec", "template", "metadata", "labels", regionLabel); got != region {
				t.Errorf("%s %s: pod template label %s = %q, want %q", kind, name, regionLabel, got, region)
			}
			// the label must not enter selectors: they are immutable, a change would block
			// every later apply
			if _, in := get(o.M, "spec", "selector", "matchLabels").(map[string]any)[regionLabel]; in {
				t.Errorf("%s %s: region label in the selector", kind, name)
			}
		}
	}
	t.Run("central", func(t *testing.T) {
		check(t, central, "writer-config", "WRITER_REGION", "Deployment/writer", "StatefulSet/nats", "Deployment/redis")
	})
	for _, dir := range edges {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			check(t, dir, "edge-config", "EDGE_REGION", "Deployment/edge", "Deployment/nats-leaf", "Deployment/redis")
		})
	}
}

// TestCentralStreamReplicas: the writer creates LICENSE_EVENTS with WRITER_STREAM_REPLICAS
// replicas (writer/outbox.EnsureStream); on the central 3-node JetStream cluster that must
// be 3, and never more than the cluster has.
func TestCentralStreamReplicas(t *testing.T) {
	central, _ := regionOverlays(t)
	objs := render(t, central)
	data, _ := configMapData(t, objs, "writer-config")
	if data["WRITER_STREAM_REPLICAS"] != "3" {
		t.Errorf("WRITER_STREAM_REPLICAS = %q, want 3", data["WRITER_STREAM_REPLICAS"])
	}
	sts := must(t, objs, "StatefulSet", "nats")
	if n := fmt.Sprint(get(sts.M, "spec", "replicas")); n != "3" {
		t.Errorf("NATS StatefulSet replicas = %s, want 3", n)
	}
	conf, _ := configMapData(t, objs, "nats-config")
	if !strings.Contains(conf["nats.conf"], "jetstream") {
		t.Error("nats.conf enables no JetStream")
	}
}

// TestCentralRedis: the writers' WRITER_REDIS_ADDR names the central Redis Service, which
// admits the writers (NetworkPolicy) and asks for the password the writers send.
func TestCentralRedis(t *testing.T) {
	central, _ := regionOverlays(t)
	objs := render(t, central)
	data, _ := configMapData(t, objs, "writer-config")
	host, port, ok := strings.Cut(data["WRITER_REDIS_ADDR"], ":")
	if !ok {
		t.Fatalf("WRITER_REDIS_ADDR = %q, want host:port", data["WRITER_REDIS_ADDR"])
	}
	svc := must(t, objs, "Service", host)
	if fmt.Sprint(get(svc.M, "spec", "ports", 0, "port")) != port {
		t.Errorf("Service %s port %v, WRITER_REDIS_ADDR port %s", host, get(svc.M, "spec", "ports", 0, "port"), port)
	}
	np := must(t, objs, "NetworkPolicy", "redis")
	if str(np.M, "spec", "ingress", 0, "from", 0, "podSelector", "matchLabels", "app.kubernetes.io/name") != "writer" {
		t.Error("the redis NetworkPolicy does not admit the writers")
	}
	redisSecretRef(t, objs, "writer", "WRITER_REDIS_PASSWORD")
}

// redisSecretRef: the Redis Deployment takes its password from the same Secret key the
// client workload reads as its *_REDIS_PASSWORD.
func redisSecretRef(t *testing.T, objs []obj, client, envVar string) {
	t.Helper()
	secretOf := func(d obj, name string) string {
		for _, e := range get(d.M, "spec", "template", "spec", "containers", 0, "env").([]any) {
			if str(e, "name") == name {
				return str(e, "valueFrom", "secretKeyRef", "name") + "/" + str(e, "valueFrom", "secretKeyRef", "key")
			}
		}
		return ""
	}
	redis := must(t, objs, "Deployment", "redis")
	want := secretOf(redis, "REDIS_PASSWORD")
	if want == "" || want == "/" {
		t.Fatal("the redis Deployment reads no REDIS_PASSWORD from a Secret")
	}
	if got := secretOf(must(t, objs, "Deployment", client), envVar); got != want {
		t.Errorf("%s reads %s from %q, redis its password from %q", client, envVar, got, want)
	}
	args := fmt.Sprint(get(redis.M, "spec", "template", "spec", "containers", 0, "args"))
	if !strings.Contains(args, "--requirepass $(REDIS_PASSWORD)") {
		t.Errorf("redis args %s: no --requirepass $(REDIS_PASSWORD)", args)
	}
}

// TestIngressTLS: the central region publishes the writer, each edge region its edges,
// through an Ingress with TLS for every host it routes; the backends exist; an edge region
// registers the shared public name with a routing policy (external-dns) and its region as
// the set identifier.
func TestIngressTLS(t *testing.T) {
	central, edges := regionOverlays(t)
	check := func(t *testing.T, dir, backend string) obj {
		objs := render(t, dir)
		var ings []obj
		for _, o := range objs {
			if o.Kind == "Ingress" {
				ings = append(ings, o)
			}
		}
		if len(ings) != 1 {
			t.Fatalf("%d Ingresses, want 1", len(ings))
		}
		ing := ings[0]
		tlsHosts := map[string]bool{}
		for _, tl := range get(ing.M, "spec", "tls").([]any) {
			if str(tl, "secretName") == "" {
				t.Error("a tls entry without secretName")
			}
			for _, h := range get(tl, "hosts").([]any) {
				tlsHosts[h.(string)] = true
			}
		}
		rules, _ := get(ing.M, "spec", "rules").([]any)
		if len(rules) == 0 {
			t.Fatal("no rules")
		}
		for _, r := range rules {
			h := str(r, "host")
			if h == "" || !tlsHosts[h] {
				t.Errorf("host %q routed without TLS", h)
			}
			for _, p := range get(r, "http", "paths").([]any) {
				name := str(p, "backend", "service", "name")
				if name != backend {
					t.Errorf("host %s path %s goes to %q, want %s", h, str(p, "path"), name, backend)
				}
				svc := must(t, objs, "Service", name)
				if fmt.Sprint(get(svc.M, "spec", "ports", 0, "name")) != str(p, "backend", "service", "port", "name") {
					t.Errorf("backend port %q is not the Service's", str(p, "backend", "service", "port", "name"))
				}
			}
		}
		if str(ing.M, "spec", "ingressClassName") == "" {
			t.Error("no ingressClassName")
		}
		return ing
	}
	t.Run("central", func(t *testing.T) { check(t, central, "writer") })
	var public string
	for _, dir := range edges {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ing := check(t, dir, "edge")
			data, _ := configMapData(t, render(t, dir), "edge-config")
			ann := get(ing.M, "metadata", "annotations").(map[string]any)
			if ann["external-dns.alpha.kubernetes.io/set-identifier"] != data["EDGE_REGION"] {
				t.Errorf("set-identifier %v, EDGE_REGION %s", ann["external-dns.alpha.kubernetes.io/set-identifier"], data["EDGE_REGION"])
			}
			if aws, _ := ann["external-dns.alpha.kubernetes.io/aws-region"].(string); !awsRegion.MatchString(aws) {
				t.Errorf("latency routing: external-dns aws-region %q is not an AWS region", aws)
			}
			if strings.Contains(string(ing.YAML), "region-name") {
				t.Error("the Ingress keeps the edge-region placeholder region-name")
			}
			host, _ := ann["external-dns.alpha.kubernetes.io/hostname"].(string)
			if host == "" {
				t.Fatal("no external-dns hostname")
			}
			if public != "" && host != public {
				t.Errorf("public name %s, another region uses %s", host, public)
			}
			public = host
			var found bool
			for _, r := range get(ing.M, "spec", "rules").([]any) {
				found = found || str(r, "host") == host
			}
			if !found {
				t.Errorf("the Ingress does not route the public name %s", host)
			}
		})
	}
}

// TestTrustedProxies: both binaries believe X-Forwarded-For only from configured ranges,
// which parse as the binaries parse them.
func TestTrustedProxies(t *testing.T) {
	central, edges := regionOverlays(t)
	check := func(t *testing.T, dir, cm, envVar string) {
		data, _ := configMapData(t, render(t, dir), cm)
		tr, err := clientip.Parse(data[envVar])
		if err != nil {
			t.Fatalf("%s=%q: %v", envVar, data[envVar], err)
		}
		if tr.Empty() {
			t.Errorf("%s is empty: behind the ingress every client would be the ingress", envVar)
		}
	}
	t.Run("central", func(t *testing.T) { check(t, central, "writer-config", "WRITER_TRUSTED_PROXIES") })
	for _, dir := range edges {
		t.Run(filepath.Base(dir), func(t *testing.T) { check(t, dir, "edge-config", "EDGE_TRUSTED_PROXIES") })
	}
}

// TestEnvVarsExist: every WRITER_/EDGE_ variable the manifests set is a setting of the
// binary (writer/app, edge/app Config), so a typo or a renamed setting fails here instead
// of being ignored in production.
func TestEnvVarsExist(t *testing.T) {
	known := knownEnv(t)
	central, edges := regionOverlays(t)
	dirs := append([]string{central, filepath.Join(k8sDir, "base")}, edges...)
	for _, dir := range dirs {
		for _, o := range render(t, dir) {
			for _, name := range envNames(o) {
				if (strings.HasPrefix(name, "WRITER_") || strings.HasPrefix(name, "EDGE_")) && !known[name] {
					t.Errorf("%s: %s %s sets %s, which no binary reads", filepath.Base(dir), o.Kind, o.Name, name)
				}
			}
		}
	}
}

// envNames lists the variable names an object defines: ConfigMap and Secret keys, and the
// env entries of its containers.
func envNames(o obj) []string {
	var out []string
	switch o.Kind {
	case "ConfigMap":
		for k := range get(o.M, "data").(map[string]any) {
			out = append(out, k)
		}
	case "Secret":
		for _, f := range []string{"data", "stringData"} {
			if m, ok := get(o.M, f).(map[string]any); ok {
				for k := range m {
					out = append(out, k)
				}
			}
		}
	case "Deployment", "StatefulSet", "Job":
		cs, _ := get(o.M, "spec", "template", "spec", "containers").([]any)
		for _, c := range cs {
			es, _ := get(c, "env").([]any)
			for _, e := range es {
				out = append(out, str(e, "name"))
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestKnownEnvSeesTheSettings(t *testing.T) {
	known := knownEnv(t)
	for _, v := range []string{"WRITER_DATABASE_URL", "WRITER_STREAM_REPLICAS", "WRITER_TRUSTED_PROXIES", "EDGE_REPLICA_URL", "EDGE_TRUSTED_PROXIES"} {
		if !known[v] {
			t.Errorf("%s not found in the Config structs", v)
		}
	}
	if known["WRITER_NO_SUCH_SETTING"] || len(known) < 60 {
		t.Errorf("%d settings found", len(known))
	}
}

// TestNATSConfigs: the rendered NATS configurations load in nats-server (-t), with the
// TLS files and the variables the pods provide, and the leaf link is TLS both ways with a
// password.
func TestNATSConfigs(t *testing.T) {
	central, edges := regionOverlays(t)
	hub, _ := configMapData(t, render(t, central), "nats-config")
	leaf, _ := configMapData(t, render(t, edges[0]), "nats-leaf-config")
	hubConf, leafConf := hub["nats.conf"], leaf["nats-leaf.conf"]
	for _, want := range []string{"verify: true", "cert_file:", "ca_file:", "password: $LEAF_PASSWORD"} {
		if !strings.Contains(section(hubConf, "leafnodes"), want) {
			t.Errorf("hub leafnodes block lacks %q", want)
		}
	}
	for _, want := range []string{"tls {", "cert_file:", "ca_file:", "url: $LEAF_REMOTE_URL"} {
		if !strings.Contains(section(leafConf, "leafnodes"), want) {
			t.Errorf("leaf remote lacks %q", want)
		}
	}
	natsServerCheck(t, hubConf, map[string]string{"SERVER_NAME": "nats-0", "LEAF_PASSWORD": "pw"})
	natsServerCheck(t, leafConf, map[string]string{"SERVER_NAME": "nats-leaf-x", "LEAF_REMOTE_URL": "tls://leaf:pw@127.0.0.1:7422"})
}

// section returns the text from the line starting with name to the end.
func section(conf, name string) string {
	for i, line := range strings.Split(conf, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), name+" ") || strings.HasPrefix(strings.TrimSpace(line), name+"{") {
			return strings.Join(strings.Split(conf, "\n")[i:], "\n")
		}
	}
	return ""
}
