import type { ResourceType } from '../../kube/client/resources.ts';
import { API_VERSION, KIND, PLURAL } from './monitoredserver-types.ts';

export const MONITORED_SERVER: ResourceType = { apiVersion: API_VERSION, kind: KIND, plural: PLURAL, namespaced: true };
