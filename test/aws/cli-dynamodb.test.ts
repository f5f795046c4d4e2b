/** The management CLI against a DynamoDB table on dynalite (real HTTP, the real AWS SDK). */
import { createPermissionTable } from '../../src/aws/dynamodb-store.ts';
import { describeCliTarget } from '../support/cli-suite.ts';
import { startDynalite } from './support.ts';

describeCliTarget('DynamoDB (dynalite)', async () => {
  const dynamo = await startDynalite();
  const tableName = `gatehouse-cli-${process.pid}`;
  await createPermissionTable(dynamo.client(), tableName);
  return {
    args: [
      '--dynamodb',
      '--table',
      tableName,
      '--endpoint',
      dynamo.endpoint,
      '--region',
      'eu-west-1',
    ],
    close: () => dynamo.close(),
  };
});
