// Command kueue runs Kueue's (sigs.k8s.io/kueue, see go.mod) admission core against a plain
// Kubernetes API server, for the Tessera e2e tests: the same packages and wiring as upstream's
// cmd/kueue (config loading, feature gates, scheduler cache, queue manager, core controllers,
// scheduler, TAS controllers when that gate is on), without webhooks, job integrations,
// certificate management, MultiKueue, provisioning, the visibility server and leader election.
//
// Why not upstream's cmd/kueue: with internalCertManagement enabled (the default) it only becomes
// ready once the Secret-backed certificates are mounted into its cert dir by a kubelet and CA bundles
// are injected into its webhook configurations and CRD conversion webhooks; with it disabled it
// requires metrics certificates at the hard-coded path /etc/kueue/metrics/certs. It also always
// registers Kueue's webhooks, which a test API server cannot reach. See README.md.
//
// Flags: --kubeconfig (or $KUBECONFIG), --config (a Kueue Configuration file, apiVersion
// config.kueue.x-k8s.io/v1beta2; optional), --feature-gates, --health-probe-bind-address,
// --metrics-bind-address, --leader-elect, and controller-runtime's zap flags (--zap-log-level ...).
// Readiness: /readyz on the health address and the log line "kueue ready" once the informer caches
// are synced and the controllers and the scheduler run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	zaplog "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	resourceapi "k8s.io/api/resource/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/flowcontrol"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	configapi "sigs.k8s.io/kueue/apis/config/v1beta2"
	kueuealpha "sigs.k8s.io/kueue/apis/kueue/v1alpha1"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"
	qcache "sigs.k8s.io/kueue/pkg/cache/queue"
	schdcache "sigs.k8s.io/kueue/pkg/cache/scheduler"
	"sigs.k8s.io/kueue/pkg/config"
	"sigs.k8s.io/kueue/pkg/constants"
	"sigs.k8s.io/kueue/pkg/controller/core"
	"sigs.k8s.io/kueue/pkg/controller/core/indexer"
	"sigs.k8s.io/kueue/pkg/controller/tas"
	tasindexer "sigs.k8s.io/kueue/pkg/controller/tas/indexer"
	"sigs.k8s.io/kueue/pkg/features"
	"sigs.k8s.io/kueue/pkg/metrics"
	"sigs.k8s.io/kueue/pkg/scheduler"
	preemptexpectations "sigs.k8s.io/kueue/pkg/scheduler/preemption/expectations"
	"sigs.k8s.io/kueue/pkg/scheduler/preemption/fairsharing"
	"sigs.k8s.io/kueue/pkg/util/useragent"
	"sigs.k8s.io/kueue/pkg/util/waitforpodsready"
	"sigs.k8s.io/kueue/pkg/version"

	// Registers the "batch/job" integration name only, so that Kueue's default configuration
	// (integrations.frameworks: [batch/job]) passes config validation. No job integration
	// controller is started.
	_ "sigs.k8s.io/kueue/pkg/controller/jobs/job"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(schedulingv1.AddToScheme(scheme))
	utilruntime.Must(resourceapi.AddToScheme(scheme))
	utilruntime.Must(kueue.AddToScheme(scheme))
	utilruntime.Must(kueuealpha.AddToScheme(scheme))
	utilruntime.Must(configapi.AddToScheme(scheme))
}

func main() {
	configFile := flag.String("config", "", "Kueue Configuration file (config.kueue.x-k8s.io/v1beta2); default: Kueue's defaults")
	featureGates := flag.String("feature-gates", "", "Kueue feature gates, key=value,... (overrides the config file's featureGates)")
	healthAddr := flag.String("health-probe-bind-address", "0", "address of /healthz and /readyz (plain HTTP); \"0\" disables")
	metricsAddr := flag.String("metrics-bind-address", "0", "address of /metrics (plain HTTP, no authn); \"0\" disables")
	leaderElect := flag.Bool("leader-elect", false, "use a Lease for leader election (as upstream's default config does)")
	zapOptions := zap.Options{
		TimeEncoder: zapcore.RFC3339NanoTimeEncoder,
		ZapOpts:     []zaplog.Option{zaplog.AddCaller()},
	}
	zapOptions.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOptions)))

	if err := run(*configFile, *featureGates, *healthAddr, *metricsAddr, *leaderElect); err != nil {
		setupLog.Error(err, "kueue failed")
		os.Exit(1)
	}
}

func run(configFile, featureGates, healthAddr, metricsAddr string, leaderElect bool) error {
	options, cfg, err := config.Load(scheme, configFile)
	if err != nil {
		return fmt.Errorf("loading the configuration: %w", err)
	}
	if err := config.ValidateFeatureGates(featureGates, cfg.FeatureGates).ToAggregate(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	if featureGates != "" {
		err = utilfeature.DefaultMutableFeatureGate.Set(featureGates)
	} else {
		err = utilfeature.DefaultMutableFeatureGate.SetFromMap(cfg.FeatureGates)
	}
	if err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	setupLog.Info("Initializing", "gitVersion", version.GitVersion, "configFile", configFile)
	features.LogFeatureGates(setupLog)

	// What upstream's cmd/kueue does differently is left out here: no webhook server, metrics over
	// plain HTTP without authn (or none), probes on the given address, leader election only on request.
	options.Metrics = metricsserver.Options{BindAddress: metricsAddr}
	options.HealthProbeBindAddress = healthAddr
	options.LeaderElection = leaderElect
	options.LeaderElectionReleaseOnCancel = leaderElect
	if options.LeaderElectionNamespace == "" {
		options.LeaderElectionNamespace = *cfg.Namespace
	}
	if metricsAddr != "0" {
		metrics.Register()
	}

	kubeConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if kubeConfig.UserAgent == "" {
		kubeConfig.UserAgent = useragent.Default()
	}
	if *cfg.ClientConnection.QPS >= 0.0 {
		kubeConfig.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(*cfg.ClientConnection.QPS, int(*cfg.ClientConnection.Burst))
	}

	ctx := ctrl.SetupSignalHandler()
	mgr, err := ctrl.NewManager(kubeConfig, options)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	// As upstream's cmd/kueue (role tracker nil: standalone; custom metric labels off).
	blockForPodsReady := waitforpodsready.Enabled(cfg.WaitForPodsReady) &&
		cfg.WaitForPodsReady.BlockAdmission != nil && *cfg.WaitForPodsReady.BlockAdmission
	requeuingTimestamp := configapi.EvictionTimestamp
	if cfg.WaitForPodsReady != nil && cfg.WaitForPodsReady.RequeuingStrategy != nil &&
		cfg.WaitForPodsReady.RequeuingStrategy.Timestamp != nil {
		requeuingTimestamp = *cfg.WaitForPodsReady.RequeuingStrategy.Timestamp
	}
	lqMetrics := metrics.NewLocalQueueMetricsConfig(cfg.Metrics.LocalQueueMetrics)
	cacheOptions := []schdcache.Option{
		schdcache.WithPodsReadyTracking(blockForPodsReady),
		schdcache.WithResourceMetrics(cfg.Metrics.EnableClusterQueueResources),
		schdcache.WithLocalQueueMetrics(lqMetrics),
	}
	queueOptions := []qcache.Option{
		qcache.WithPodsReadyRequeuingTimestamp(requeuingTimestamp),
		qcache.WithLocalQueueMetrics(lqMetrics),
	}
	if cfg.Resources != nil && len(cfg.Resources.ExcludeResourcePrefixes) > 0 {
		cacheOptions = append(cacheOptions, schdcache.WithExcludedResourcePrefixes(cfg.Resources.ExcludeResourcePrefixes))
		queueOptions = append(queueOptions, qcache.WithExcludedResourcePrefixes(cfg.Resources.ExcludeResourcePrefixes))
	}
	if cfg.Resources != nil && len(cfg.Resources.Transformations) > 0 {
		cacheOptions = append(cacheOptions, schdcache.WithResourceTransformations(cfg.Resources.Transformations))
		queueOptions = append(queueOptions, qcache.WithResourceTransformations(cfg.Resources.Transformations))
	}
	if cfg.FairSharing != nil {
		cacheOptions = append(cacheOptions, schdcache.WithFairSharing(fairsharing.Enabled(cfg.FairSharing)))
	}
	if cfg.AdmissionFairSharing != nil {
		queueOptions = append(queueOptions, qcache.WithAdmissionFairSharing(cfg.AdmissionFairSharing))
		cacheOptions = append(cacheOptions, schdcache.WithAdmissionFairSharing(cfg.AdmissionFairSharing))
	}
	cCache := schdcache.New(mgr.GetClient(), cacheOptions...)

	requeuer := qcache.NewRequeuer()
	if err := mgr.Add(requeuer); err != nil {
		return fmt.Errorf("adding the requeuer: %w", err)
	}
	preemptionExpectations := preemptexpectations.New()
	queueOptions = append(queueOptions, qcache.WithPreemptionExpectations(preemptionExpectations))
	queues := qcache.NewManager(mgr.GetClient(), cCache, requeuer, queueOptions...)

	if err := indexer.Setup(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("setting up indexes: %w", err)
	}
	tasEnabled := features.Enabled(features.TopologyAwareScheduling)
	if tasEnabled {
		if err := tasindexer.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
			return fmt.Errorf("setting up TAS indexes: %w", err)
		}
	}

	if failed, err := core.SetupControllers(mgr, queues, cCache, &cfg, nil, preemptionExpectations, nil); err != nil {
		return fmt.Errorf("setting up the %s controller: %w", failed, err)
	}
	if tasEnabled {
		if failed, err := tas.SetupControllers(mgr, queues, cCache, &cfg, nil); err != nil {
			return fmt.Errorf("setting up the TAS %s controller: %w", failed, err)
		}
	}
	sched := scheduler.New(
		queues,
		cCache,
		mgr.GetClient(),
		mgr.GetEventRecorderFor(constants.AdmissionName),
		scheduler.WithPodsReadyRequeuingTimestamp(requeuingTimestamp),
		scheduler.WithFairSharing(cfg.FairSharing),
		scheduler.WithAdmissionFairSharing(cfg.AdmissionFairSharing),
		scheduler.WithPreemptionExpectations(preemptionExpectations),
	)
	if err := mgr.Add(sched); err != nil {
		return fmt.Errorf("adding the scheduler: %w", err)
	}

	// Readiness: a leader-election runnable starts with the controllers and the scheduler, after
	// the manager's informers have started; it waits for them to sync.
	ready := make(chan struct{})
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return nil // stopping
		}
		close(ready)
		setupLog.Info("kueue ready")
		return nil
	})); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", func(*http.Request) error {
		select {
		case <-ready:
			return nil
		default:
			return errors.New("caches not synced yet")
		}
	}); err != nil {
		return err
	}

	go queues.CleanUpOnContext(ctx)
	go cCache.CleanUpOnContext(ctx)

	setupLog.Info("Starting manager")
	start := time.Now()
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	setupLog.Info("Stopped", "ranFor", time.Since(start).Round(time.Millisecond).String())
	return nil
}
