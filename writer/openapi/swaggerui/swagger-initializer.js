// Boots Swagger UI against the writer's own OpenAPI document. Everything is served by the
// writer itself: no CDN, and validatorUrl is off so the page never calls validator.swagger.io.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.yaml",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    tryItOutEnabled: false,
    persistAuthorization: false
  });
};
