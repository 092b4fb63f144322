// install-manifests prints, as JSON lines (one object per line), the objects KubeVirt's own virt-operator would
// install for a KubeVirt CR in the given namespace: CRDs, service accounts, RBAC, the virt-api
// Service, virt-api's admission webhooks, its APIServices and the virt-handler admission policy.
// It calls virt-operator's install-strategy generator, so the test world installs exactly what the
// KubeVirt release it runs would install. Deployments and DaemonSets are printed too, for their
// container arguments; the harness runs the binaries itself.
//
// Built by hack/build-kubevirt.sh inside the scratch module that requires kubevirt.io/kubevirt.
package main

import (
	"encoding/json"
	"fmt"
	"os"


	v1 "kubevirt.io/api/core/v1"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/install"
	operatorutil "kubevirt.io/kubevirt/pkg/virt-operator/util"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func main() {
	namespace := "kubevirt"
	if len(os.Args) > 1 {
		namespace = os.Args[1]
	}
	kv := &v1.KubeVirt{ObjectMeta: metav1.ObjectMeta{Name: "kubevirt", Namespace: namespace}}
	config := operatorutil.GetTargetConfigFromKV(kv)
	strategy, err := install.GenerateCurrentInstallStrategy(config, "", namespace)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var objects []interface{}
	// The KubeVirt CRD itself comes with virt-operator's own manifests, not its install strategy.
	kubevirtCrd, err := components.NewKubeVirtCrd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	objects = append(objects, kubevirtCrd)
	for _, o := range strategy.CRDs() {
		objects = append(objects, o)
	}
	for _, o := range strategy.ServiceAccounts() {
		objects = append(objects, o)
	}
	for _, o := range strategy.ClusterRoles() {
		objects = append(objects, o)
	}
	for _, o := range strategy.ClusterRoleBindings() {
		objects = append(objects, o)
	}
	for _, o := range strategy.Roles() {
		objects = append(objects, o)
	}
	for _, o := range strategy.RoleBindings() {
		objects = append(objects, o)
	}
	for _, o := range strategy.Services() {
		objects = append(objects, o)
	}
	for _, o := range strategy.ValidatingWebhookConfigurations() {
		objects = append(objects, o)
	}
	for _, o := range strategy.MutatingWebhookConfigurations() {
		objects = append(objects, o)
	}
	// virt-operator installs these with a typed client; their generator leaves apiVersion "v1".
	for _, o := range strategy.ValidatingAdmissionPolicies() {
		o.APIVersion = "admissionregistration.k8s.io/v1"
		objects = append(objects, o)
	}
	for _, o := range strategy.ValidatingAdmissionPolicyBindings() {
		o.APIVersion = "admissionregistration.k8s.io/v1"
		objects = append(objects, o)
	}
	for _, o := range strategy.APIServices() {
		objects = append(objects, o)
	}
	for _, o := range strategy.Deployments() {
		objects = append(objects, o)
	}
	for _, o := range strategy.DaemonSets() {
		objects = append(objects, o)
	}
	for _, o := range objects {
		b, err := json.Marshal(o)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s\n", b)
	}
}
