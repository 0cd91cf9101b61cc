// One MongoDB user per service, allowed readWrite on its own database and nothing else.
// The mongo image runs this once, when the mongo-data volume is first created
// (/docker-entrypoint-initdb.d), before authentication is switched on. The passwords
// come from the container's environment (MONGO_<SERVICE>_PASSWORD, set from .env);
// each service connects with
//   mongodb://<service>:<password>@mongo:27017/?replicaSet=rs0&authSource=closeloop_<service>
const services = ["intake", "routing", "followup", "notify", "reporting"];
const passwordVariable = (service) => `MONGO_${service.toUpperCase()}_PASSWORD`;

// All or nothing: a missing password stops the first start before any user exists.
const missing = services.map(passwordVariable).filter((variable) => !process.env[variable]);
if (missing.length) {
  throw new Error(`${missing.join(", ")} not set: run python -m deploy.secrets init`);
}

for (const service of services) {
  const database = `closeloop_${service}`;
  db.getSiblingDB(database).createUser({
    user: service,
    pwd: process.env[passwordVariable(service)],
    roles: [{ role: "readWrite", db: database }],
  });
  print(`created MongoDB user ${service}: readWrite on ${database}`);
}
