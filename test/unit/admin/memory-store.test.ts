import { MemoryAdminStore } from '../../../src/admin/memory.ts';
import { describeAdminStore } from '../../support/admin-store-contract.ts';

describeAdminStore('memory', { create: async () => new MemoryAdminStore() });
