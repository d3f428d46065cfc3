// Command podsecurity judges pods with upstream's own Pod Security evaluator
// (k8s.io/pod-security-admission, the code the API server's PodSecurity admission plugin runs).
// `render --check` runs it once per rendering, through tools/podsecurity/__init__.py.
//
// It reads one JSON document on stdin:
//
//	{"checks": [{"id": "...", "namespaceLabels": {...}, "level": "...", "version": "...",
//	             "podSpec": {...PodSpec...}, "metadata": {...ObjectMeta...}}]}
//
// Each check is evaluated at the level and version the API server would enforce on a pod of a
// namespace with `namespaceLabels`, read as the plugin reads them (api.PolicyToEvaluate with the
// built-in default privileged:latest, so an unlabelled namespace is privileged and an unparsable
// enforce level fails closed to restricted). `level` and `version`, when given, replace what the
// labels say: "what if this namespace enforced restricted". A check needs labels or a level.
//
// Before judging, the pod gets the two defaults the API server applies before admission that change
// what the checks see (k8s.io/kubernetes pkg/apis/core/v1/defaults.go): a volume without a source
// becomes an emptyDir (SetDefaults_Volume) and, with hostNetwork, a container port without a host
// port gets its container port as host port (SetDefaults_Pod, defaultHostNetworkPorts).
//
// It prints, in the same order:
//
//	{"results": [{"id": "...", "level": "restricted", "version": "v1.36", "labelErrors": ["..."],
//	              "allowed": true|false, "forbidden": [{"reason": "...", "detail": "..."}], "error": ""}]}
//
// `forbidden` holds upstream's ForbiddenReason and ForbiddenDetail of each failed check, in
// upstream's order. A pod that is not a PodSpec and ObjectMeta (a string where a number belongs)
// is not judged: its result has the decoding `error` and allowed false. Fields neither type knows
// are ignored, as the API server drops them. Bad input otherwise (unknown keys of the request or
// of a check, a missing id or podSpec, a check with neither labels nor level, an unknown level or
// version, a duplicate id, trailing data) is reported on stderr with exit status 2; nothing is
// printed on stdout then.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
)

type request struct {
	Checks []check `json:"checks"`
}

type check struct {
	ID              string            `json:"id"`
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	Level           string            `json:"level"`
	Version         string            `json:"version"`
	PodSpec         json.RawMessage   `json:"podSpec"`
	Metadata        json.RawMessage   `json:"metadata"`
}

type response struct {
	Results []result `json:"results"`
}

type result struct {
	ID          string      `json:"id"`
	Level       string      `json:"level"`
	Version     string      `json:"version"`
	LabelErrors []string    `json:"labelErrors"`
	Allowed     bool        `json:"allowed"`
	Forbidden   []forbidden `json:"forbidden"`
	Error       string      `json:"error"`
}

type forbidden struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// defaultPolicy is the API server's when its AdmissionConfiguration names no defaults.
var defaultPolicy = api.Policy{
	Enforce: api.LevelVersion{Level: api.LevelPrivileged, Version: api.LatestVersion()},
	Audit:   api.LevelVersion{Level: api.LevelPrivileged, Version: api.LatestVersion()},
	Warn:    api.LevelVersion{Level: api.LevelPrivileged, Version: api.LatestVersion()},
}

func main() {
	out, err := run(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "podsecurity: %v\n", err)
		os.Exit(2)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		fmt.Fprintf(os.Stderr, "podsecurity: writing results: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader) ([]byte, error) {
	req, err := decode(in)
	if err != nil {
		return nil, err
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the evaluator: %w", err)
	}
	resp := response{Results: make([]result, 0, len(req.Checks))}
	seen := map[string]bool{}
	pods := map[string]decodedPod{} // a pod judged at several levels is decoded once
	for i, c := range req.Checks {
		lv, labelErrors, err := c.levelVersion(i, seen)
		if err != nil {
			return nil, err
		}
		res := result{
			ID:          c.ID,
			Level:       string(lv.Level),
			Version:     lv.Version.String(),
			LabelErrors: labelErrors,
			Allowed:     true,
			Forbidden:   []forbidden{},
		}
		key := string(c.Metadata) + "\x00" + string(c.PodSpec)
		pod, ok := pods[key]
		if !ok {
			pod = c.pod()
			pods[key] = pod
		}
		if pod.err != nil {
			res.Allowed, res.Error = false, pod.err.Error()
			resp.Results = append(resp.Results, res)
			continue
		}
		for _, r := range evaluator.EvaluatePod(lv, &pod.meta, &pod.spec) {
			if r.Allowed {
				continue
			}
			res.Allowed = false
			reason := r.ForbiddenReason
			if reason == "" {
				reason = policy.UnknownForbiddenReason
			}
			res.Forbidden = append(res.Forbidden, forbidden{Reason: reason, Detail: r.ForbiddenDetail})
		}
		resp.Results = append(resp.Results, res)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("encoding the results: %w", err)
	}
	return append(out, '\n'), nil
}

func decode(in io.Reader) (request, error) {
	var req request
	data, err := io.ReadAll(in)
	if err != nil {
		return req, fmt.Errorf("reading stdin: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return req, errors.New(`empty input: expected {"checks": [...]}`)
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&req); err != nil {
		return req, fmt.Errorf("decoding the input: %w", err)
	}
	if _, err := decoder.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("decoding the input: trailing data after the document")
	}
	if req.Checks == nil {
		return req, errors.New(`decoding the input: no "checks" list`)
	}
	return req, nil
}

// levelVersion is what the check is evaluated at, and what upstream found wrong in the labels.
func (c check) levelVersion(i int, seen map[string]bool) (api.LevelVersion, []string, error) {
	var lv api.LevelVersion
	if c.ID == "" {
		return lv, nil, fmt.Errorf("checks[%d]: no id", i)
	}
	if seen[c.ID] {
		return lv, nil, fmt.Errorf("checks[%d]: duplicate id %q", i, c.ID)
	}
	seen[c.ID] = true
	if len(c.PodSpec) == 0 || string(c.PodSpec) == "null" {
		return lv, nil, fmt.Errorf("checks[%d] (%s): no podSpec", i, c.ID)
	}
	if c.NamespaceLabels == nil && c.Level == "" {
		return lv, nil, fmt.Errorf("checks[%d] (%s): no namespaceLabels and no level", i, c.ID)
	}
	nsPolicy, errs := api.PolicyToEvaluate(c.NamespaceLabels, defaultPolicy)
	labelErrors := make([]string, 0, len(errs))
	for _, e := range errs {
		labelErrors = append(labelErrors, e.Error())
	}
	lv = nsPolicy.Enforce
	if c.Level != "" {
		level, err := api.ParseLevel(c.Level)
		if err != nil {
			return lv, nil, fmt.Errorf("checks[%d] (%s): level %q: %w", i, c.ID, c.Level, err)
		}
		lv.Level = level
	}
	if c.Version != "" {
		version, err := api.ParseVersion(c.Version)
		if err != nil {
			return lv, nil, fmt.Errorf("checks[%d] (%s): version %q: %w", i, c.ID, c.Version, err)
		}
		lv.Version = version
	}
	return lv, labelErrors, nil
}

type decodedPod struct {
	meta metav1.ObjectMeta
	spec corev1.PodSpec
	err  error
}

// pod is the check's pod, decoded as the API server's non-strict decoding would, with its defaults.
// The checks only read it, so one decoded pod serves every check of the same pod.
func (c check) pod() decodedPod {
	var pod decodedPod
	if err := json.Unmarshal(c.PodSpec, &pod.spec); err != nil {
		pod.err = fmt.Errorf("podSpec: %w", err)
		return pod
	}
	if len(c.Metadata) > 0 {
		if err := json.Unmarshal(c.Metadata, &pod.meta); err != nil {
			pod.err = fmt.Errorf("metadata: %w", err)
			return pod
		}
	}
	pod.spec = defaulted(pod.spec)
	return pod
}

// defaulted is the pod spec with the API server's defaults that Pod Security reads (see the package
// comment), applied to copies: the input is left as it is.
func defaulted(spec corev1.PodSpec) corev1.PodSpec {
	spec.Volumes = append([]corev1.Volume(nil), spec.Volumes...)
	for i := range spec.Volumes {
		if ptr.AllPtrFieldsNil(&spec.Volumes[i].VolumeSource) {
			spec.Volumes[i].VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		}
	}
	if spec.HostNetwork {
		spec.Containers = withHostPorts(spec.Containers)
		spec.InitContainers = withHostPorts(spec.InitContainers)
	}
	return spec
}

func withHostPorts(containers []corev1.Container) []corev1.Container {
	containers = append([]corev1.Container(nil), containers...)
	for i := range containers {
		containers[i].Ports = append([]corev1.ContainerPort(nil), containers[i].Ports...)
		for j := range containers[i].Ports {
			if containers[i].Ports[j].HostPort == 0 {
				containers[i].Ports[j].HostPort = containers[i].Ports[j].ContainerPort
			}
		}
	}
	return containers
}
