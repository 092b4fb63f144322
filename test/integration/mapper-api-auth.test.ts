// The process mapper's API refuses whoever may not read the server's processes: a bearer token
// the real API server authenticates (TokenReview) whose user may get monitoredservers/processes of
// this MonitoredServer (SubjectAccessReview), asked with the mapper's own ServiceAccount and
// exactly its RBAC (deploy/rbac.yaml). /metrics and /healthz stay open.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { createKubeApi } from '../../src/kube/client/rest.ts';
import { realClock } from '../../src/kube/util/clock.ts';
import { silentLogger } from '../../src/kube/util/logger.ts';
import { RequestAuthorizer } from '../../src/sidecar/api-auth.ts';
import { createSidecarServer } from '../../src/sidecar/http-server.ts';
import { createMapperMetrics } from '../../src/sidecar/metrics.ts';
import { ProcessMapper } from '../../src/sidecar/process-mapper.ts';
import { kubernetesAttachChecker } from '../../src/procfs/attach-auth.ts';
import { Errno } from '../../src/procfs/ninep-codec.ts';
import { startProcfsService } from '../../src/procfs/procfs-service.ts';
import type { NinePServer } from '../../src/procfs/ninep-server.ts';
import { NinePTestClient } from '../../testenv/procfs/ninep-client.ts';
import { startCluster, type LocalCluster } from '../../testenv/cluster/local-cluster.ts';
import { ensureNamespace } from '../../testenv/cluster/namespaces.ts';
import { grantOperatorRbac } from '../../testenv/operator/operator-rbac.ts';

const NS = 'shop';

describe('process mapper API authentication and authorization (real kube-apiserver)', function () {
  this.timeout(300_000);
  let cluster: LocalCluster;
  let url: string;
  let close: () => void;
  let procfs: NinePServer | undefined;
  const tokens: Record<string, string> = {};

  const tokenOf = async (namespace: string, name: string) =>
    (await cluster.api(k8s.CoreV1Api).createNamespacedServiceAccountToken({ namespace, name, body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status!.token as string;

  before(async function () {
    cluster = await startCluster({ nodes: 1 });
    await grantOperatorRbac(cluster);
    await ensureNamespace(cluster, NS);
    const core = cluster.api(k8s.CoreV1Api);
    const rbac = cluster.api(k8s.RbacAuthorizationV1Api);
    for (const name of ['alice', 'bob']) await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name } } });
    // bob may read web-1's processes (the chart's process-reader ClusterRole bound in the namespace); alice may not.
    await rbac.createNamespacedRoleBinding({ namespace: NS, body: { metadata: { name: 'bob-reads-processes' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'hyperspector-process-reader' }, subjects: [{ kind: 'ServiceAccount', name: 'bob', namespace: NS }] } });
    tokens.alice = await tokenOf(NS, 'alice');
    tokens.bob = await tokenOf(NS, 'bob');
    // The mapper's own identity asks the API server.
    const mapperKc = new k8s.KubeConfig();
    const c = cluster.kubeConfig.getCurrentCluster()!;
    mapperKc.loadFromOptions({ clusters: [{ name: 'c', server: c.server, caData: c.caData, caFile: c.caFile, skipTLSVerify: false }], users: [{ name: 'm', token: await tokenOf('hyperspector-system', 'hyperspector-process-mapper') }], contexts: [{ name: 'x', cluster: 'c', user: 'm' }], currentContext: 'x' });
    const metrics = createMapperMetrics(false);
    const mapper = new ProcessMapper({
      vmi: { namespace: NS, name: 'web-1-server' }, profiles: [], pollIntervalMs: 1000,
      baseline: { learningWindowMs: 1000, shells: [], networkServices: [] },
      clock: realClock, logger: silentLogger(), metrics,
      findQemu: () => undefined,
      attach: () => { throw new Error('no guest here'); },
    });
    const authorizer = new RequestAuthorizer({ api: createKubeApi(mapperKc), monitoredServer: { namespace: NS, name: 'web-1' }, clock: realClock });
    const server = createSidecarServer({ mapper, metrics, vmi: { namespace: NS, name: 'web-1-server' }, pollIntervalMs: 1000, clock: realClock, authorizer });
    // The 9P process view checks its attach name with the same authorizer.
    procfs = await startProcfsService({ host: '127.0.0.1', port: 0, mapper, checker: kubernetesAttachChecker(authorizer), metrics, logger: silentLogger(), clock: realClock, procRoot: '/proc' });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => {
      server.closeAllConnections();
      server.close();
    };
  });

  after(async () => {
    close?.();
    await procfs?.close();
    await cluster?.stop();
  });

  const get = (path: string, token?: string) => fetch(`${url}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  it('refuses a request without a token (401), with a bad token (401), and a user without the verb (403)', async function () {
    for (const path of ['/processes', '/processes/1', '/events']) {
      assert.equal((await get(path)).status, 401, path);
      assert.equal((await get(path, 'not-a-token')).status, 401, path);
      const denied = await get(path, tokens.alice);
      assert.equal(denied.status, 403, path);
      assert.match(((await denied.json()) as { error: string }).error, /system:serviceaccount:shop:alice" cannot get monitoredservers\/processes of shop\/web-1/);
    }
  });

  it('serves a user allowed to get monitoredservers/processes (no guest here: the mapper says so), as the API server decides', async function () {
    const res = await get('/processes', tokens.bob);
    assert.equal(res.status, 503, 'authorized: the answer is the mapper’s own (no snapshot yet)');
    assert.match(((await res.json()) as { error: string }).error, /no QEMU process|no snapshot/);
    const admin = await get('/processes', cluster.users.admin.token);
    assert.equal(admin.status, 503);
  });

  it('lets the same users attach the 9P process view: the token in the attach name', async function () {
    const attach = async (token: string) => {
      const client = await NinePTestClient.connect(procfs!.address().port);
      try {
        const reply = await client.attach(token);
        return reply.kind === 'Rlerror' ? reply.ecode : reply.kind;
      } finally {
        client.close();
      }
    };
    assert.equal(await attach('not-a-token'), Errno.EACCES);
    assert.equal(await attach(tokens.alice!), Errno.EACCES);
    assert.equal(await attach(tokens.bob!), 'Rattach');
    assert.equal(await attach(cluster.users.admin.token), 'Rattach');
  });

  it('keeps /metrics and /healthz open', async function () {
    assert.equal((await get('/metrics')).status, 200);
    assert.equal((await get('/healthz')).status, 503, 'not attached: unhealthy, but not 401');
  });
});
