// Vite serves the React app (with hot reload) and forwards /_telefunc — calls, the SSE stream
// and the WebSocket (`ws: true`) — to the Python server (`telefunc dev server`).
//
// `changeOrigin` stays false: the Python server then sees the browser's own Host
// (localhost:5173) next to its Origin (http://localhost:5173), so the call is same-origin and
// passes the server's cross-site check with no flag. (A proxy that rewrites Host instead needs
// that origin in `config.allowed_origins`.)
//
// TELEFUNC_SERVER overrides where the Python server listens (the tests use it).
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

const server = process.env.TELEFUNC_SERVER ?? 'http://127.0.0.1:3000'

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/_telefunc': { target: server, ws: true, changeOrigin: false },
    },
  },
  build: {
    // `npm run build` puts the production build where `telefunc serve server` serves it.
    outDir: 'server/public',
    emptyOutDir: true,
  },
})
