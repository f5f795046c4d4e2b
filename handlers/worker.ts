/**
 * Cloudflare Workers entry point. Placeholder until the Workers edge lands: it answers 501 so a
 * deployment of the skeleton can never be mistaken for a guard that allows traffic.
 */
export default {
  async fetch(): Promise<Response> {
    return Response.json(
      {
        type: 'about:blank',
        title: 'Not implemented',
        status: 501,
        detail: 'arrives with the Workers edge',
      },
      { status: 501, headers: { 'content-type': 'application/problem+json' } },
    );
  },
};
