// Command testcluster is a multi-call binary holding an unmodified Kubernetes control plane, built
// from the published Go modules (k8s.io/kubernetes + its staging modules, go.etcd.io/etcd/server/v3):
//
//	testcluster etcd ...                 embedded etcd (etcdmain.Main, same flags as the etcd binary)
//	testcluster apiserver ...            kube-apiserver          (same flags as upstream)
//	testcluster controller-manager ...   kube-controller-manager (same flags as upstream)
//	testcluster scheduler ...            kube-scheduler          (same flags as upstream)
//	testcluster up --dir DIR             supervisor: certificates, one child process per component,
//	                                     readiness, DIR/kubeconfig, clean stop on SIGTERM/SIGINT
//	testcluster version
//
// Every component runs in its own process (hyperkube style): upstream components keep process-global
// state (feature gates, component registry, signal handlers), so they must never share a process.
//
// When invoked through a symlink named etcd, kube-apiserver, kube-controller-manager or
// kube-scheduler, the binary behaves as that component (useful for envtest's KUBEBUILDER_ASSETS).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/etcdmain"

	_ "time/tzdata" // for CronJob time zone support, as upstream's kube-apiserver/kube-controller-manager

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go prometheus plugins
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric registration
	"k8s.io/component-base/version"

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = `usage: testcluster <command> [flags]

commands:
  up                   run a whole control plane (see: testcluster up --help)
  etcd                 embedded etcd server (etcd's own flags)
  apiserver            kube-apiserver (upstream flags)
  controller-manager   kube-controller-manager (upstream flags)
  scheduler            kube-scheduler (upstream flags)
  version              print the Kubernetes version this binary was built from
`

func main() {
	// Symlink dispatch: kube-apiserver -> testcluster behaves as "testcluster apiserver".
	switch filepath.Base(os.Args[0]) {
	case "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler":
		os.Exit(runComponent(filepath.Base(os.Args[0]), os.Args[1:]))
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	sub, args := os.Args[1], os.Args[2:]
	switch sub {
	case "up":
		os.Exit(runUp(args))
	case "version", "--version":
		v := version.Get()
		fmt.Printf("testcluster: Kubernetes %s (commit %s, %s, %s)\n", v.GitVersion, v.GitCommit, v.GoVersion, v.Platform)
		os.Exit(0)
	case "help", "-h", "--help":
		fmt.Print(usage)
		os.Exit(0)
	}
	os.Exit(runComponent(sub, args))
}

// runComponent behaves exactly like the component's upstream main(): build the cobra command, run it.
func runComponent(name string, args []string) int {
	switch name {
	case "etcd":
		// etcdmain.Main parses args[1:] and exits the process itself (also on SIGTERM/SIGINT).
		etcdmain.Main(append([]string{"etcd"}, args...))
		return 0
	case "apiserver", "kube-apiserver":
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "controller-manager", "kube-controller-manager":
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "scheduler", "kube-scheduler":
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	}
	fmt.Fprintf(os.Stderr, "testcluster: unknown command %q\n\n%s", name, usage)
	return 2
}
