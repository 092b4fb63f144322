// kube-controller-manager (every built-in controller) and kube-scheduler for the local control
// plane, both as admin, without leader election, each on its own secure port on loopback.
import { controlPlaneBinaries } from './binaries.ts';
import type { ClusterProcesses } from './processes.ts';
import { freePort } from '../free-port.ts';

export async function startKubeControllers(
  processes: ClusterProcesses,
  files: { adminKubeconfig: string; serviceAccountKeyFile: string; rootCaFile: string },
): Promise<void> {
  const bins = controlPlaneBinaries();
  const admin = files.adminKubeconfig;
  // Flags kube-controller-manager and kube-scheduler share: credentials, no leader election,
  // their own secure port on loopback.
  const common = async () => [
    `--kubeconfig=${admin}`,
    `--authentication-kubeconfig=${admin}`,
    `--authorization-kubeconfig=${admin}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${await freePort()}`,
    '--v=1',
  ];
  processes.start('kube-controller-manager', bins.kubeControllerManager, [
    ...(await common()),
    `--service-account-private-key-file=${files.serviceAccountKeyFile}`,
    `--root-ca-file=${files.rootCaFile}`,
    '--use-service-account-credentials=false',
    '--controllers=*',
  ]);
  processes.start('kube-scheduler', bins.kubeScheduler, await common());
}
