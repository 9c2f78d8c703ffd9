// Package kubernetes_test checks the Kubernetes manifests of deploy/kubernetes:
// every manifest, and what `kubectl kustomize` renders from them, decodes strictly
// into the Kubernetes API's own types (an unknown or misspelt field fails), and
// the Indexed Job, the merge Job and the volume are what a sharded run needs.
package kubernetes_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// objects are the manifests decoded, by kind.
type objects struct {
	jobs       map[string]*batchv1.Job
	pvcs       map[string]*corev1.PersistentVolumeClaim
	configMaps map[string]*corev1.ConfigMap
}

// decode decodes every document of a multi-document YAML stream strictly into the
// type its apiVersion and kind name.
func decode(t *testing.T, name string, data []byte) objects {
	t.Helper()
	o := objects{jobs: map[string]*batchv1.Job{}, pvcs: map[string]*corev1.PersistentVolumeClaim{}, configMaps: map[string]*corev1.ConfigMap{}}
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("%s, document %d: %v", name, i+1, err)
		}
		strict := func(into any) {
			t.Helper()
			if err := yaml.UnmarshalStrict(doc, into); err != nil {
				t.Fatalf("%s, document %d (%s %s): %v", name, i+1, head.APIVersion, head.Kind, err)
			}
		}
		switch head.APIVersion + " " + head.Kind {
		case "batch/v1 Job":
			var j batchv1.Job
			strict(&j)
			o.jobs[j.Name] = &j
		case "v1 PersistentVolumeClaim":
			var p corev1.PersistentVolumeClaim
			strict(&p)
			o.pvcs[p.Name] = &p
		case "v1 ConfigMap":
			var c corev1.ConfigMap
			strict(&c)
			o.configMaps[c.Name] = &c
		default:
			t.Fatalf("%s, document %d: unexpected %s %s", name, i+1, head.APIVersion, head.Kind)
		}
	}
	return o
}

// manifests decodes the directory's manifests as they are in the repository.
func manifests(t *testing.T) objects {
	t.Helper()
	all := objects{jobs: map[string]*batchv1.Job{}, pvcs: map[string]*corev1.PersistentVolumeClaim{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, f := range []string{"results-pvc.yaml", "shards-job.yaml", "merge-job.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o := decode(t, f, b)
		for k, v := range o.jobs {
			all.jobs[k] = v
		}
		for k, v := range o.pvcs {
			all.pvcs[k] = v
		}
	}
	return all
}

func TestManifestsDecodeStrictly(t *testing.T) {
	o := manifests(t)
	checkRun(t, o, "")
}

// A misspelt field fails the strict decoding the tests rely on.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	bad := []byte("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  completionMod: Indexed\n")
	var j batchv1.Job
	if err := yaml.UnmarshalStrict(bad, &j); err == nil || !strings.Contains(err.Error(), "completionMod") {
		t.Fatalf("an unknown field decoded: %v", err)
	}
}

// The scenario the ConfigMap carries is a valid scenario.
func TestScenarioIsValid(t *testing.T) {
	b, err := os.ReadFile("scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenarios.Parse("scenario.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Target.DSN == "" && sc.Target.Kind != scenarios.TargetAurora {
		t.Error("the shards' pods cannot share an embedded target: the scenario must name a database they reach (target.dsn or aurora)")
	}
}

// checkRun checks the Indexed Job of shards, the merge Job and the results volume;
// configMap is the scenario ConfigMap's name ("" before kustomize names it).
func checkRun(t *testing.T, o objects, configMap string) {
	t.Helper()
	shards := o.jobs["rehearse-shards"]
	merge := o.jobs["rehearse-merge"]
	pvc := o.pvcs["rehearse-results"]
	if shards == nil || merge == nil || pvc == nil {
		t.Fatalf("want the rehearse-shards and rehearse-merge Jobs and the rehearse-results claim; have jobs %v, claims %v", keys(o.jobs), keys(o.pvcs))
	}
	s := shards.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode = %v, want Indexed", s.CompletionMode)
	}
	if s.Completions == nil || s.Parallelism == nil || *s.Completions != *s.Parallelism || *s.Completions < 1 {
		t.Fatalf("completions %v, parallelism %v: every shard runs at once", s.Completions, s.Parallelism)
	}
	n := *s.Completions
	if s.BackoffLimit == nil || *s.BackoffLimit != 0 {
		t.Errorf("backoffLimit %v: a retried shard would register twice", s.BackoffLimit)
	}
	pod := s.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %s", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["REHEARSE_SHARDS"] != fmt.Sprint(n) {
		t.Errorf("REHEARSE_SHARDS = %q, completions %d", env["REHEARSE_SHARDS"], n)
	}
	if _, set := env["JOB_COMPLETION_INDEX"]; set {
		t.Error("JOB_COMPLETION_INDEX is the Job controller's to set")
	}
	args := strings.Join(c.Args, " ")
	if !strings.HasPrefix(args, "run /scenario/scenario.yaml") || !strings.Contains(args, "--out /results/shard-$(JOB_COMPLETION_INDEX)") {
		t.Errorf("shard args %q", args)
	}
	if slices.Contains(c.Args, "--shard") {
		t.Error("the shard comes from the environment the Job gives its pods")
	}
	mem, cpu := c.Resources.Requests.Memory(), c.Resources.Requests.Cpu()
	if mem.IsZero() || cpu.IsZero() {
		t.Errorf("shard requests memory %v, cpu %v: size them from BENCHMARKS.md", mem, cpu)
	}
	checkVolumes(t, "rehearse-shards", pod, c, map[string]string{"/scenario": "scenario", "/results": "results"}, configMap)

	mpod := merge.Spec.Template.Spec
	if len(mpod.Containers) != 1 || mpod.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("merge pod: %d containers, restartPolicy %s", len(mpod.Containers), mpod.RestartPolicy)
	}
	mc := mpod.Containers[0]
	margs := strings.Join(mc.Args, " ")
	if !strings.HasPrefix(margs, "report merge /results --out /results/merged") || !strings.Contains(margs, "--wait") {
		t.Errorf("merge args %q", margs)
	}
	if mc.Image != c.Image {
		t.Errorf("merge image %s, shards' %s", mc.Image, c.Image)
	}
	checkVolumes(t, "rehearse-merge", mpod, mc, map[string]string{"/results": "results"}, "")

	if !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
		t.Errorf("the results claim's access modes %v: pods on several nodes write to it", pvc.Spec.AccessModes)
	}
}

// checkVolumes checks that c mounts each path from the named volume, and what the
// volumes are.
func checkVolumes(t *testing.T, job string, pod corev1.PodSpec, c corev1.Container, mounts map[string]string, configMap string) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for path, name := range mounts {
		found := false
		for _, m := range c.VolumeMounts {
			if m.MountPath == path && m.Name == name {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: nothing mounts volume %s at %s", job, name, path)
		}
		v, ok := vols[name]
		switch {
		case !ok:
			t.Errorf("%s: no volume %s", job, name)
		case name == "results" && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "rehearse-results"):
			t.Errorf("%s: the results volume is not the rehearse-results claim: %+v", job, v.VolumeSource)
		case name == "scenario" && (v.ConfigMap == nil || (configMap != "" && v.ConfigMap.Name != configMap)):
			t.Errorf("%s: the scenario volume is not the scenario ConfigMap %s: %+v", job, configMap, v.VolumeSource)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// kustomize renders dir with kubectl.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	kubectl := testutil.RequireTool(t, "kubectl", "kubectl, which renders the kustomization")
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
	}
	return out
}

// `kubectl kustomize deploy/kubernetes` renders valid manifests: the scenario as a
// ConfigMap the shards mount, and the Jobs as above.
func TestKustomizeRenders(t *testing.T) {
	o := decode(t, "kubectl kustomize", kustomize(t, "."))
	if len(o.configMaps) != 1 {
		t.Fatalf("want one ConfigMap (the scenario), have %v", keys(o.configMaps))
	}
	var cm *corev1.ConfigMap
	for _, c := range o.configMaps {
		cm = c
	}
	if !strings.HasPrefix(cm.Name, "rehearse-scenario") {
		t.Errorf("ConfigMap %s", cm.Name)
	}
	if _, err := scenarios.Parse("scenario.yaml", []byte(cm.Data["scenario.yaml"])); err != nil {
		t.Errorf("the ConfigMap's scenario: %v", err)
	}
	checkRun(t, o, cm.Name)
	for _, j := range o.jobs {
		if j.Labels["app.kubernetes.io/name"] != "rehearse" {
			t.Errorf("job %s labels %v", j.Name, j.Labels)
		}
	}
}

// The number of shards is one field: the patch's value in kustomization.yaml
// sets the Job's completions, its parallelism and every pod's REHEARSE_SHARDS.
func TestShardCountIsOneField(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"kustomization.yaml", "results-pvc.yaml", "shards-job.yaml", "merge-job.yaml", "scenario.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == "kustomization.yaml" {
			const field = "path: /spec/completions\n        value: 3\n"
			if !bytes.Contains(b, []byte(field)) {
				t.Fatalf("kustomization.yaml has no %q", field)
			}
			b = bytes.Replace(b, []byte(field), []byte("path: /spec/completions\n        value: 7\n"), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := decode(t, "kubectl kustomize", kustomize(t, dir))
	j := o.jobs["rehearse-shards"]
	if j == nil || *j.Spec.Completions != 7 || *j.Spec.Parallelism != 7 {
		t.Fatalf("completions/parallelism not 7: %+v", j.Spec)
	}
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "REHEARSE_SHARDS" && e.Value != "7" {
			t.Errorf("REHEARSE_SHARDS = %q, want 7", e.Value)
		}
	}
}
