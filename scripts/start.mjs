// `npm start` runs the guard Worker on `wrangler dev`; that arrives with the Workers edge.
console.log(
  'gatehouse: `npm start` arrives with the Workers edge (wrangler dev with a seeded demo).',
);
console.log('Until then: `npm test` runs the core, and the README shows the policy format.');
