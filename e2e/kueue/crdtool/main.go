// Command crdtool copies Kueue's CRD manifests (config/components/crd/bases of the
// sigs.k8s.io/kueue module) into a form a plain API server serves without Kueue's webhooks:
//
//   - spec.versions keeps only v1beta2 (served: true, storage: true); v1beta1 is dropped. Upstream
//     serves both and converts between them with a conversion webhook in Kueue's pod (kustomize
//     patches config/components/crd/patches/webhook_in_*.yaml); without that webhook the API
//     server would hand out v1beta2 objects relabelled as v1beta1 (strategy None only rewrites
//     apiVersion), so v1beta1 is not served at all.
//   - spec.conversion is set to {strategy: None}.
//   - metadata.annotations keeps controller-gen's version annotation only (no cert-manager CA
//     injection annotation).
//
// Everything else, schemas included, is unchanged. Output: one JSON file per CRD, named like the
// upstream file (kueue.x-k8s.io_workloads.json), for `kubectl apply --server-side -f DIR` (the
// Workload CRD is still ~340 kB, beyond client-side apply's 256 kB annotation limit).
//
// Usage: go run ./crdtool SRC_DIR DST_DIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

const keepVersion = "v1beta2"

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: crdtool SRC_DIR DST_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "crdtool:", err)
		os.Exit(1)
	}
}

func run(src, dst string) error {
	files, err := filepath.Glob(filepath.Join(src, "kueue.x-k8s.io_*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no kueue.x-k8s.io_*.yaml in %s", src)
	}
	sort.Strings(files)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := convert(f, filepath.Join(dst, strings.TrimSuffix(filepath.Base(f), ".yaml")+".json")); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

func convert(src, dst string) error {
	raw, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return err
	}
	if crd["kind"] != "CustomResourceDefinition" {
		return fmt.Errorf("kind %v, want CustomResourceDefinition", crd["kind"])
	}
	spec, _ := crd["spec"].(map[string]any)
	versions, _ := spec["versions"].([]any)
	var kept []any
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		if vm["name"] == keepVersion {
			vm["served"] = true
			vm["storage"] = true
			delete(vm, "deprecated")
			delete(vm, "deprecationWarning")
			kept = append(kept, vm)
		}
	}
	if len(kept) != 1 {
		return fmt.Errorf("no version %s", keepVersion)
	}
	spec["versions"] = kept
	spec["conversion"] = map[string]any{"strategy": "None"}
	if md, ok := crd["metadata"].(map[string]any); ok {
		if ann, ok := md["annotations"].(map[string]any); ok {
			for k := range ann {
				if !strings.HasPrefix(k, "controller-gen.kubebuilder.io/") {
					delete(ann, k)
				}
			}
		}
	}
	out, err := json.Marshal(crd)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, append(out, '\n'), 0o644)
}
